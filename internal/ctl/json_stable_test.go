package ctl

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestJSONIsStable: scripts parse --json, so the same queue gives the same
// bytes on every call (deterministic order, no map-order or clock noise in
// list and inspect), and empty collections are [] rather than null or
// missing, on an empty queue as on a full one.
func TestJSONIsStable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		t.Run("empty queue", func(t *testing.T) {
			var status map[string]any
			e.runJSON(&status, "status")
			assert.Len(t, status["queues"], 4, "the known queues are listed even when empty")
			for _, k := range []string{"active", "failures", "workers", "skipped", "quota_unreadable", "down_nodes"} {
				assert.Equal(t, []any{}, status[k], "status %s", k)
			}
			for _, k := range keys(t, status["totals"]) {
				assert.Equal(t, float64(0), status["totals"].(map[string]any)[k], "totals %s", k)
			}
			for _, st := range stateNames {
				var list map[string]any
				e.runJSON(&list, "list", st)
				assert.Equal(t, []any{}, list["tasks"], "list %s", st)
				assert.NotNil(t, list["queues"], "list %s", st)
			}
			var retry map[string]any
			e.runJSON(&retry, "retry", "--all")
			for _, k := range []string{"retried", "skipped", "errors"} {
				assert.Equal(t, []any{}, retry[k], "retry %s", k)
			}
		})

		newQueueFixture(t, e)
		same := func(args ...string) []byte {
			t.Helper()
			code, a, errOut := e.run(append(args, "--json")...)
			require.Equal(t, 0, code, "%v: %s", args, errOut)
			_, b, _ := e.run(append(args, "--json")...)
			assert.Equal(t, a, b, "%v twice", args)
			assert.True(t, json.Valid([]byte(a)), "%v: %s", args, a)
			return []byte(a)
		}
		t.Run("full queue", func(t *testing.T) {
			for _, st := range append(append([]string(nil), stateNames...), "failed", "done") {
				same("list", st)
			}
			for _, id := range []string{idPending, idActive, idScheduled, idRetry, idArchived, idCompleted, idFlaky} {
				out := same("inspect", id)
				var d map[string]any
				require.NoError(t, json.Unmarshal(out, &d))
				assert.Equal(t, id, d["id"])
			}
			var doc ListDoc
			e.runJSON(&doc, "list", "archived")
			require.Len(t, doc.Tasks, 2)
			assert.Equal(t, []string{idArchived, idFlaky}, []string{doc.Tasks[0].ID, doc.Tasks[1].ID}, "a stable order")
		})
	})
}
