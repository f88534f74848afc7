package redisconn

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// transientReplies start the Redis error replies that mean "not now, this
// server cannot take it": a replica not promoted yet (READONLY), a server
// still loading its data (LOADING), a replica cut off from its master
// (MASTERDOWN), a cluster resharding or down (TRYAGAIN, CLUSTERDOWN).
var transientReplies = []string{"READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"}

// IsTransient reports whether err means Redis is unreachable or between
// masters for now (a crash, a restart, a Sentinel failover) rather than that
// the command was wrong: retrying shortly is the cure.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, redis.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, e) {
			return true
		}
	}
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range transientReplies {
			if strings.HasPrefix(re.Error(), p) {
				return true
			}
		}
	}
	// Errors flattened to text on the way: asynq reports a failed script as
	// "redis eval error: <the go-redis error>", and go-redis's failover
	// client says so in a plain error when no sentinel answers.
	msg := err.Error()
	for _, s := range transientTexts {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// transientTexts are the messages of transient errors that lost their type.
var transientTexts = []string{
	"connect: connection refused", "connection reset by peer", "broken pipe", "i/o timeout",
	"READONLY You can't write", "LOADING Redis is loading", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
	"all sentinels specified in configuration are unreachable",
}
