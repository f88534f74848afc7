package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/image"
	"github.com/imagesync/imagesync/internal/pithos"
	"github.com/imagesync/imagesync/internal/rest"
)

func TestClassify(t *testing.T) {
	status := func(code int) error {
		return fmt.Errorf("wrapped: %w", &rest.Error{Method: "PUT", URL: "/x", Status: code})
	}
	tests := []struct {
		name string
		err  error
		want Class
		hint string
	}{
		{"503", status(http.StatusServiceUnavailable), Transient, ""},
		{"429", status(http.StatusTooManyRequests), Transient, ""},
		{"409 changed under us", status(http.StatusConflict), Transient, ""},
		{"network", &rest.NetError{Method: "GET", URL: "/x", Err: errors.New("connection reset")}, Transient, ""},
		{"deadline", context.DeadlineExceeded, Transient, ""},
		{"401", status(http.StatusUnauthorized), Unauthorized, ""},
		{"400", status(http.StatusBadRequest), Permanent, "syncctl retry"},
		{"403", status(http.StatusForbidden), Permanent, "may not write there"},
		{"404", status(http.StatusNotFound), Permanent, "syncctl resync"},
		{"413", status(http.StatusRequestEntityTooLarge), Permanent, "quota is full"},
		{"quota pre-check", &pithos.QuotaError{Object: "a", Needed: 10, Free: 1}, Permanent, "raise the pithos.diskspace quota) (run `syncctl retry` once there is room)"},
		{"quota 413", &pithos.QuotaError{Object: "a", Free: -1, Err: &rest.Error{Status: http.StatusRequestEntityTooLarge}}, Permanent, "once there is room"},
		{"metafile", &image.MetafileError{File: "a.meta", Err: errors.New("bad")}, Permanent, "fix the metafile"},
		{"validation", &image.ValidationError{}, Permanent, "fix the metafile"},
		{"missing file", fmt.Errorf("open: %w", fs.ErrNotExist), Permanent, "the file is gone"},
		{"unreadable file", fmt.Errorf("open: %w", fs.ErrPermission), Permanent, "make the file readable"},
		{"marked permanent", permanent(errors.New("x")), Permanent, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Classify(tt.err))
			out := asJobError("upload a", tt.err)
			switch tt.want {
			case Permanent:
				require.ErrorIs(t, out, asynq.SkipRetry, "asynq archives it")
				require.Contains(t, out.Error(), tt.hint)
				require.LessOrEqual(t, strings.Count(out.Error(), "retry"), 1, "one piece of advice: %s", out)
			case Unauthorized:
				var ue *UnauthorizedError
				require.ErrorAs(t, out, &ue)
				require.NotErrorIs(t, out, asynq.SkipRetry)
			default:
				require.NotErrorIs(t, out, asynq.SkipRetry)
			}
		})
	}
}
