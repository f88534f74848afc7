package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// Conformance of ?until, the history views and purges, with the real
// server: snf-pithos-app pithos/api/functions.py (account_meta,
// container_list, container_meta, object_list, container_delete,
// object_delete, object_meta, _object_read), snf-pithos-backend
// pithos/backends/modular.py (get_account_meta, list_containers,
// get_container_meta, list_container_meta, delete_container,
// _delete_object, _get_properties, _get_statistics) and
// lib/sqlalchemy/node.py (version_lookup: the greatest serial with
// mtime < until; node_purge and node_purge_children: mtime <= until).

// testClock is the sandbox's clock in these tests: every change made while
// it reads T is stamped T.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// at sets the clock to base+sec seconds.
func (c *testClock) at(sec int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = time.Unix(histBase+sec, 0)
}

// histBase is the clock's origin; times in these tests are offsets from it.
const histBase = 1_700_000_000

func newHistEnv(t *testing.T) (*psEnv, *testClock) {
	clock := &testClock{}
	clock.at(0)
	return newPsEnv(t, Config{Clock: clock.now}), clock
}

// until is the ?until of base+sec.
func until(sec int64) string { return "until=" + strconv.FormatInt(histBase+sec, 10) }

func httpDateAt(sec int64) string { return time.Unix(histBase+sec, 0).UTC().Format(http.TimeFormat) }

func TestUntilAccount(t *testing.T) {
	e, clock := newHistEnv(t)
	acct := pp(psAlice.UUID)
	clock.at(0)
	e.mkContainer(t, psAlice, "apples", nil)
	e.mustPut(t, psAlice, "apples", "a", psData(100, 1), nil)
	clock.at(1)
	e.mkContainer(t, psAlice, "bananas", nil)
	e.mustPut(t, psAlice, "bananas", "b", psData(200, 2), nil)
	clock.at(2)
	r := e.do(t, &psAlice, http.MethodPost, acct+"?update", map[string]string{"X-Account-Meta-Foo": "bar"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	clock.at(100)
	e.mkContainer(t, psAlice, "oranges", nil)
	e.mustPut(t, psAlice, "oranges", "o", psData(300, 3), nil)
	r = e.do(t, &psAlice, http.MethodPost, acct+"?update", map[string]string{"X-Account-Meta-Quality": "AAA"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)

	r = e.do(t, &psAlice, http.MethodHead, acct, nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Equal(t, "AAA", r.header.Get("X-Account-Meta-Quality"))
	assert.Equal(t, "bar", r.header.Get("X-Account-Meta-Foo"))
	assert.Empty(t, r.header.Values("X-Account-Until-Timestamp"), "only with ?until")
	assert.Equal(t, "3", r.header.Get("X-Account-Container-Count"))

	// get_account_meta(until): the account meta of the version current
	// then, the containers that existed then, and until_timestamp, the
	// last modification before until.
	r = e.do(t, &psAlice, http.MethodHead, acct+"?"+until(50), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, r.header.Values("X-Account-Meta-Quality"))
	assert.Equal(t, "bar", r.header.Get("X-Account-Meta-Foo"))
	assert.Equal(t, httpDateAt(2), r.header.Get("X-Account-Until-Timestamp"))
	assert.Equal(t, "2", r.header.Get("X-Account-Container-Count"))
	// With Astakos as the quotaholder the bytes are Astakos' usage, now.
	assert.Equal(t, "600", r.header.Get("X-Account-Bytes-Used"))
	assert.Equal(t, httpDateAt(100), r.header.Get("Last-Modified"), "modified is the overall last modification")

	// container_list(until): the containers that existed then.
	r = e.do(t, &psAlice, http.MethodGet, acct+"?"+until(50), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "apples\nbananas\n", string(r.body))
	assert.Equal(t, httpDateAt(2), r.header.Get("X-Account-Until-Timestamp"))
	r = e.do(t, &psAlice, http.MethodGet, acct+"?format=json&"+until(50), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	items := r.jsonList(t)
	require.Len(t, items, 2)
	assert.Equal(t, "apples", items[0]["name"])
	assert.EqualValues(t, 1, items[0]["count"])
	assert.EqualValues(t, 100, items[0]["bytes"])
	// printable_header_dict: the until timestamp as isoformat.
	assert.Equal(t, "2023-11-14T22:13:20+00:00", items[0]["x_container_until_timestamp"])
	assert.Equal(t, "bananas", items[1]["name"])
	assert.Equal(t, "2023-11-14T22:13:21+00:00", items[1]["x_container_until_timestamp"])

	// Before the account existed: no meta, no containers, and the until
	// timestamp is until itself (_get_properties fails, mtime = until).
	r = e.do(t, &psAlice, http.MethodHead, acct+"?"+until(-100), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, r.header.Values("X-Account-Meta-Foo"))
	assert.Equal(t, "0", r.header.Get("X-Account-Container-Count"))
	assert.Equal(t, httpDateAt(-100), r.header.Get("X-Account-Until-Timestamp"))
	r = e.do(t, &psAlice, http.MethodGet, acct+"?"+until(-100), nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status, "an empty text listing")

	// get_int_parameter: a negative or non-numeric until is no until
	// (accounts.py test_get_account_meta_until_invalid_date).
	for _, q := range []string{"until=-1", "until=abc", "until=", "until=1.5"} {
		r = e.do(t, &psAlice, http.MethodHead, acct+"?"+q, nil, nil)
		require.Equal(t, http.StatusNoContent, r.status, q)
		assert.Equal(t, "AAA", r.header.Get("X-Account-Meta-Quality"), q)
		assert.Empty(t, r.header.Values("X-Account-Until-Timestamp"), q)
	}

	// Another user may read the account (something is shared) but not its
	// history.
	e.mustPut(t, psAlice, "apples", "shared", []byte("s"), map[string]string{"X-Object-Sharing": "read=" + psBob.UUID})
	r = e.do(t, &psBob, http.MethodHead, acct, nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psBob, http.MethodHead, acct+"?"+until(50), nil, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	r = e.do(t, &psBob, http.MethodGet, acct+"?"+until(50), nil, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "Browsing other account's history is not allowed", r.fault(t, wire.FaultForbidden))
}

func TestUntilContainer(t *testing.T) {
	e, clock := newHistEnv(t)
	cont := pp(psAlice.UUID, "apples")
	clock.at(0)
	e.mkContainer(t, psAlice, "apples", nil)
	e.mustPut(t, psAlice, "apples", "o1", psData(100, 1), map[string]string{"X-Object-Meta-Foo1": "x"})
	e.mustPut(t, psAlice, "apples", "o2", psData(50, 2), map[string]string{"X-Object-Meta-Foo2": "y"})
	clock.at(1)
	r := e.do(t, &psAlice, http.MethodPost, cont+"?update", map[string]string{"X-Container-Meta-Foo": "bar"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	clock.at(100)
	e.mustPut(t, psAlice, "apples", "o3", psData(10, 3), map[string]string{"X-Object-Meta-Foo3": "z"})
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "apples", "o1"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodPost, cont+"?update", map[string]string{"X-Container-Meta-Quality": "AAA"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	e.mkContainer(t, psAlice, "bananas", nil)

	r = e.do(t, &psAlice, http.MethodHead, cont, nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Equal(t, "AAA", r.header.Get("X-Container-Meta-Quality"))
	assert.Equal(t, "2", r.header.Get("X-Container-Object-Count"))
	assert.Empty(t, r.header.Values("X-Container-Until-Timestamp"), "containers.py: no until timestamp without ?until")

	// get_container_meta(until) and list_container_meta(until).
	r = e.do(t, &psAlice, http.MethodHead, cont+"?"+until(50), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, r.header.Values("X-Container-Meta-Quality"))
	assert.Equal(t, "bar", r.header.Get("X-Container-Meta-Foo"))
	assert.Equal(t, httpDateAt(1), r.header.Get("X-Container-Until-Timestamp"))
	assert.Equal(t, "2", r.header.Get("X-Container-Object-Count"))
	assert.Equal(t, "150", r.header.Get("X-Container-Bytes-Used"))
	assert.Equal(t, "Foo1,Foo2", r.header.Get("X-Container-Object-Meta"))
	assert.Equal(t, httpDateAt(100), r.header.Get("Last-Modified"))

	// version_lookup takes versions with mtime < until, strictly: at until
	// 1 the meta set at 1 is not yet there, and at 0 the container created
	// at 0 does not exist yet.
	r = e.do(t, &psAlice, http.MethodHead, cont+"?"+until(1), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, r.header.Values("X-Container-Meta-Foo"))
	assert.Equal(t, httpDateAt(0), r.header.Get("X-Container-Until-Timestamp"))
	r = e.do(t, &psAlice, http.MethodHead, cont+"?"+until(0), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	r = e.do(t, &psAlice, http.MethodHead, cont+"?"+until(100), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, r.header.Values("X-Container-Meta-Quality"), "set at 100")
	assert.Equal(t, "bar", r.header.Get("X-Container-Meta-Foo"))

	// object_list(until): the objects then, o1 included though deleted
	// since; no last_modified ('modified' is None with until).
	r = e.do(t, &psAlice, http.MethodGet, cont+"?"+until(50), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "o1\no2\n", string(r.body))
	r = e.do(t, &psAlice, http.MethodGet, cont+"?format=json&"+until(50), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	items := r.jsonList(t)
	require.Len(t, items, 2)
	assert.Equal(t, "o1", items[0]["name"])
	assert.EqualValues(t, 100, items[0]["bytes"])
	assert.Equal(t, strconv.Itoa(histBase)+".000000", items[0]["x_object_version_timestamp"])
	assert.NotContains(t, items[0], "last_modified")
	assert.Equal(t, httpDateAt(1), r.header.Get("X-Container-Until-Timestamp"))
	r = e.do(t, &psAlice, http.MethodGet, cont+"?format=json&prefix=o2&"+until(50), nil, nil)
	assert.Len(t, r.jsonList(t), 1)
	r = e.do(t, &psAlice, http.MethodGet, cont+"?format=json", nil, nil)
	assert.Contains(t, r.jsonList(t)[0], "last_modified")

	// Before the container existed: 404, "Path does not exist"
	// (_get_properties).
	for _, c := range []struct {
		path string
		sec  int64
	}{{cont, -10}, {pp(psAlice.UUID, "bananas"), 50}} {
		for _, m := range []string{http.MethodHead, http.MethodGet} {
			r = e.do(t, &psAlice, m, c.path+"?"+until(c.sec), nil, nil)
			require.Equal(t, http.StatusNotFound, r.status, "%s %s", m, c.path)
			if m == http.MethodGet {
				assert.Equal(t, "Path does not exist", r.fault(t, wire.FaultNotFound))
			}
		}
	}
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "nope")+"?"+until(50), nil, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Container does not exist", r.fault(t, wire.FaultNotFound))

	// The account listing then has apples only.
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID)+"?"+until(50), nil, nil)
	assert.Equal(t, "apples\n", string(r.body))

	// Another user with a share in the container: no history.
	e.mustPut(t, psAlice, "apples", "s", []byte("s"), map[string]string{"X-Object-Sharing": "read=" + psBob.UUID})
	r = e.do(t, &psBob, http.MethodGet, cont, nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	r = e.do(t, &psBob, http.MethodGet, cont+"?"+until(50), nil, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "Accessing other account's historical information is not allowed", r.fault(t, wire.FaultForbidden))
}

// object_delete with until: _delete_object → node_purge(node, until, …) on
// the normal, history and deleted clusters: the versions last modified at
// or before until go, nothing newer.
func TestUntilObjectDelete(t *testing.T) {
	e, clock := newHistEnv(t)
	e.mkContainer(t, psAlice, "c", nil)
	obj := pp(psAlice.UUID, "c", "o")
	clock.at(0)
	v1 := e.mustPut(t, psAlice, "c", "o", []byte("first"), nil).header.Get("X-Object-Version")
	clock.at(10)
	e.mustPut(t, psAlice, "c", "o", []byte("second"), map[string]string{"X-Object-Sharing": "read=" + psBob.UUID})
	clock.at(20)
	r := e.do(t, &psAlice, http.MethodPost, obj+"?update", map[string]string{"X-Object-Meta-K": "v"}, nil)
	require.Equal(t, http.StatusAccepted, r.status)
	v3 := r.header.Get("X-Object-Version")
	require.Len(t, e.versions(t, psAlice, psAlice.UUID, "c", "o"), 3)
	clock.at(30)

	// until older than the object: nothing goes, it keeps its content.
	r = e.do(t, &psAlice, http.MethodDelete, obj+"?"+until(-5), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodGet, obj, nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "second", string(r.body))
	assert.Len(t, e.versions(t, psAlice, psAlice.UUID, "c", "o"), 3)

	// until between versions: the older ones go, the current stays.
	r = e.do(t, &psAlice, http.MethodDelete, obj+"?"+until(10), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	vs := e.versions(t, psAlice, psAlice.UUID, "c", "o")
	require.Len(t, vs, 1)
	assert.Equal(t, v3, fmt.Sprint(vs[0][0]))
	r = e.do(t, &psAlice, http.MethodGet, obj, nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "second", string(r.body))
	r = e.do(t, &psAlice, http.MethodHead, obj+"?version="+v1, nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status, "a purged version")
	r = e.do(t, &psBob, http.MethodHead, obj, nil, nil)
	assert.Equal(t, http.StatusOK, r.status, "the sharing of a kept object stays")

	// until at the current version's mtime (node_purge: mtime <= until):
	// the object goes, its sharing too.
	r = e.do(t, &psAlice, http.MethodDelete, obj+"?"+until(20), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodHead, obj, nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	r = e.do(t, &psAlice, http.MethodGet, obj+"?version=list&format=json", nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status, "no version left: no node")
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c"), nil, nil)
	assert.Equal(t, "0", r.header.Get("X-Container-Object-Count"))
	assert.Equal(t, "0", r.header.Get("X-Container-Bytes-Used"))
	clock.at(40)
	e.mustPut(t, psAlice, "c", "o", []byte("again"), nil)
	r = e.do(t, &psBob, http.MethodHead, obj, nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status, "the sharing went with the object")

	// until newer than every version removes the object.
	clock.at(50)
	e.mustPut(t, psAlice, "c", "p", []byte("p1"), nil)
	clock.at(51)
	e.mustPut(t, psAlice, "c", "p", []byte("p2"), nil)
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "p")+"?"+until(1000), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c", "p"), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)

	// A deleted object: its history up to until goes, the deletion marker
	// after until stays (the object remains deleted, with no versions to
	// list), and a later purge takes the rest.
	clock.at(60)
	e.mustPut(t, psAlice, "c", "d", []byte("d"), nil)
	clock.at(70)
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "d"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "d")+"?"+until(65), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	assert.Empty(t, e.versions(t, psAlice, psAlice.UUID, "c", "d"))
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "d"), nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Object is deleted.", r.fault(t, wire.FaultNotFound))
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "d")+"?"+until(70), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "d")+"?version=list&format=json", nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)

	// A path that never held an object is not an error; ?delimiter plays
	// no part (the until branch returns first).
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "never")+"?"+until(1000), nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status)
	e.mustPut(t, psAlice, "c", "dir/x", []byte("x"), nil)
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "dir")+"?delimiter=/&"+until(1000), nil, nil)
	assert.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c", "dir/x"), nil, nil)
	assert.Equal(t, http.StatusOK, r.status)

	// Only the owner; the container must exist.
	r = e.do(t, &psBob, http.MethodDelete, obj+"?"+until(1000), nil, nil)
	assert.Equal(t, http.StatusForbidden, r.status)
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "nope", "o")+"?"+until(1000), nil, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Container does not exist", r.fault(t, wire.FaultNotFound))
}

// container_delete with until: delete_container purges the history and
// deleted versions up to until (node_purge_children) and returns, so a
// container that is not empty answers 204 and keeps its objects.
func TestUntilContainerDelete(t *testing.T) {
	e, clock := newHistEnv(t)
	cont := pp(psAlice.UUID, "c")
	e.mkContainer(t, psAlice, "c", nil)
	clock.at(0)
	e.mustPut(t, psAlice, "c", "a", []byte("a1"), nil)
	e.mustPut(t, psAlice, "c", "gone", []byte("g"), nil)
	clock.at(5)
	r := e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "gone"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	clock.at(10)
	e.mustPut(t, psAlice, "c", "a", []byte("a2"), nil)
	clock.at(20)
	e.mustPut(t, psAlice, "c", "a", []byte("a3"), nil)
	clock.at(30)

	r = e.do(t, &psAlice, http.MethodDelete, cont, nil, nil)
	require.Equal(t, http.StatusConflict, r.status, "without until: not empty")

	r = e.do(t, &psAlice, http.MethodDelete, cont+"?"+until(5), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	r = e.do(t, &psAlice, http.MethodHead, cont, nil, nil)
	require.Equal(t, http.StatusNoContent, r.status, "the container stays")
	assert.Equal(t, "1", r.header.Get("X-Container-Object-Count"))
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "a"), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "a3", string(r.body), "the live object keeps its content")
	assert.Len(t, e.versions(t, psAlice, psAlice.UUID, "c", "a"), 2, "a1 went; a2 (after until) and a3 stay")
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "gone")+"?version=list&format=json", nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status, "a deleted object with nothing after until is gone")

	r = e.do(t, &psAlice, http.MethodDelete, cont+"?"+until(1000), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	vs := e.versions(t, psAlice, psAlice.UUID, "c", "a")
	require.Len(t, vs, 1, "only the current version is left")
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "a"), nil, nil)
	assert.Equal(t, "a3", string(r.body))

	r = e.do(t, &psBob, http.MethodDelete, cont+"?"+until(1000), nil, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, "User does not have write access to the container", r.fault(t, wire.FaultForbidden))
	r = e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "nope")+"?"+until(1000), nil, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "Container does not exist", r.fault(t, wire.FaultNotFound))
}

// object_meta and _object_read read ?version, never ?until: an object's
// HEAD and GET with until answer the current version.
func TestUntilIgnoredByObjectReads(t *testing.T) {
	e, clock := newHistEnv(t)
	e.mkContainer(t, psAlice, "c", nil)
	clock.at(0)
	e.mustPut(t, psAlice, "c", "o", []byte("old"), nil)
	clock.at(10)
	cur := e.mustPut(t, psAlice, "c", "o", []byte("new"), nil).header.Get("X-Object-Version")
	obj := pp(psAlice.UUID, "c", "o")
	r := e.do(t, &psAlice, http.MethodHead, obj+"?"+until(5), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, cur, r.header.Get("X-Object-Version"))
	r = e.do(t, &psAlice, http.MethodGet, obj+"?"+until(5), nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "new", string(r.body))
}

// A delete leaves a version in the deleted cluster, which ?version=list
// leaves out (list_versions) and ?version=N does not serve (_get_version:
// VersionNotExists).
func TestDeletionMarker(t *testing.T) {
	e, clock := newHistEnv(t)
	e.mkContainer(t, psAlice, "c", nil)
	clock.at(0)
	v1 := e.mustPut(t, psAlice, "c", "o", []byte("x"), nil).header.Get("X-Object-Version")
	clock.at(1)
	r := e.do(t, &psAlice, http.MethodDelete, pp(psAlice.UUID, "c", "o"), nil, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	next, err := strconv.Atoi(e.mustPut(t, psAlice, "c", "p", []byte("y"), nil).header.Get("X-Object-Version"))
	require.NoError(t, err)
	marker := strconv.Itoa(next - 1)
	require.NotEqual(t, v1, marker)

	vs := e.versions(t, psAlice, psAlice.UUID, "c", "o")
	require.Len(t, vs, 1)
	assert.Equal(t, v1, fmt.Sprint(vs[0][0]))
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c", "o")+"?version="+marker, nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	r = e.do(t, &psAlice, http.MethodHead, pp(psAlice.UUID, "c", "o")+"?version="+v1, nil, nil)
	require.Equal(t, http.StatusOK, r.status, "the history of a deleted object is readable")
	// Last-Modified of a version view of a deleted object is the deletion's.
	assert.Equal(t, httpDateAt(1), r.header.Get("Last-Modified"))
	var list struct {
		Versions [][2]any `json:"versions"`
	}
	r = e.do(t, &psAlice, http.MethodGet, pp(psAlice.UUID, "c", "o")+"?version=list&format=json", nil, nil)
	require.NoError(t, json.Unmarshal(r.body, &list))
	assert.Len(t, list.Versions, 1)
}
