package redisconn

import (
	"context"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// LogTo sends go-redis's own messages (every failed dial while Redis is
// away, the sentinel it picked) to log at debug level instead of plain
// lines on stderr among syncd's JSON: syncd reports what matters itself,
// with context (Redis unreachable, a failover with the old and new master).
// go-redis has one logger per process, so only a command's main sets it.
func LogTo(log *zap.Logger) {
	redis.SetLogger(zapPrintf{log.Named("go-redis").Sugar()})
}

type zapPrintf struct{ s *zap.SugaredLogger }

func (z zapPrintf) Printf(_ context.Context, format string, v ...any) { z.s.Debugf(format, v...) }
