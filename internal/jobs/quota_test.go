package jobs

import (
	"bytes"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/imagesync/imagesync/internal/sandbox"
)

// quotaFault answers the account service's GET /quotas itself while on.
func quotaFault(on *atomic.Bool, status int, body string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if on.Load() && strings.HasSuffix(r.URL.Path, "/quotas") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// The quota pre-check is advice: when the account service does not serve
// /quotas, or answers in a shape we do not know, uploads go ahead (before,
// they were archived for good on a 400/404 and retried forever on an odd
// shape). The problem is said once: one warning, a gauge, and a note
// `syncctl status` shows; the note goes once the quotas can be read again.
func TestQuotaPrecheckIsAdvice(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
	}{
		{"not served (404)", `<h1>Not Found</h1>`, http.StatusNotFound},
		{"bad request (400)", `{"badRequest": {"code": 400, "message": "Unknown request"}}`, http.StatusBadRequest},
		{"a list", `[]`, http.StatusOK},
		{"numbers as objects", `{"p": {"pithos.diskspace": {"usage": {"x": 1}}}}`, http.StatusOK},
		{"no diskspace resource", `{}`, http.StatusOK},
		{"not JSON", `quota`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var on atomic.Bool
			on.Store(true)
			core, logs := observer.New(zapcore.InfoLevel)
			p := newPipelineWith(t, pipelineOptions{wrap: quotaFault(&on, tt.status, tt.body), log: zap.New(core)})

			for _, name := range []string{"a.diskdump", "b.diskdump"} {
				// Different content, so that each upload sends blocks and is
				// pre-checked.
				f := p.write(name, bytes.Repeat([]byte(name[:1]), 5*4096))
				up, err := p.catalog.UploadRequest(f, false)
				p.enqueue(up, err)
				p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
			}
			assert.Equal(t, 1, logs.FilterMessageSnippet("cannot read the storage quota").Len(), "warned once")
			assert.Equal(t, 1.0, testutil.ToFloat64(p.metrics.QuotaUnreadable))
			notes, err := ListQuotaUnreadable(p.ctx, p.rdb)
			require.NoError(t, err)
			require.Len(t, notes, 1)
			assert.Equal(t, "n1", notes[0].Node)
			assert.NotEmpty(t, notes[0].Reason)

			// Readable again: the next upload (of blocks the server lacks, so
			// that it is pre-checked) clears the note.
			on.Store(false)
			f := p.write("c.diskdump", bytes.Repeat([]byte("c"), 5*4096))
			up, err := p.catalog.UploadRequest(f, false)
			p.enqueue(up, err)
			p.wait(up.Queue, up.ID, asynq.TaskStateCompleted)
			assert.Equal(t, 0.0, testutil.ToFloat64(p.metrics.QuotaUnreadable))
			notes, err = ListQuotaUnreadable(p.ctx, p.rdb)
			require.NoError(t, err)
			assert.Empty(t, notes)
			assert.Equal(t, 1, logs.FilterMessageSnippet("can be read again").Len())
		})
	}
}

// With the quotas unreadable and the quota really full, the server's 413
// says so: the upload is archived with the quota message and nothing is
// registered.
func TestQuotaFullWithoutThePrecheck(t *testing.T) {
	var on atomic.Bool
	on.Store(true)
	p := newPipelineWith(t, pipelineOptions{sandbox: sandbox.Config{Quota: 10000}, wrap: quotaFault(&on, http.StatusNotFound, "")})
	f := p.write("big.diskdump", make([]byte, 5*4096))
	up, err := p.catalog.UploadRequest(f, false)
	p.enqueue(up, err)
	info := p.wait(up.Queue, up.ID, asynq.TaskStateArchived)
	assert.Contains(t, info.LastErr, "quota")
	assert.Contains(t, info.LastErr, "413")
	assert.Nil(t, p.image("big.diskdump"))
}
