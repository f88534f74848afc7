package ctl

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/jobs"
)

// A node that cannot read the storage quota uploads without the pre-check;
// `syncctl status` says so, in the table and in --json.
func TestStatusShowsAnUnreadableQuota(t *testing.T) {
	e := newEnv(t, "miniredis")
	note, err := json.Marshal(jobs.QuotaNote{Node: "n1", Reason: "astakos: GET /quotas: 404 Not Found", Since: time.Now()})
	require.NoError(t, err)
	require.NoError(t, e.rdb.HSet(context.Background(), jobs.QuotaUnreadableKey, "n1", note).Err())

	code, out, errOut := e.run("status")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "quota: node n1 cannot read the storage quota")
	assert.Contains(t, out, "uploads go ahead without the pre-check")
	assert.Contains(t, out, "404 Not Found")

	var doc StatusDoc
	e.runJSON(&doc, "status")
	require.Len(t, doc.QuotaUnreadable, 1)
	assert.Equal(t, "n1", doc.QuotaUnreadable[0].Node)
}
