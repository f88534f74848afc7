package astakos

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/imagesync/imagesync/internal/rest"
)

// Unlimited is the limit Astakos reports when none is set
// (synnefo.util.units.PRACTICALLY_INFINITE = 2**63-1).
const Unlimited int64 = math.MaxInt64

// Diskspace is the Pithos storage resource.
const Diskspace = "pithos.diskspace"

// Quota is one resource's counters in one project: the user's own share
// (Usage, Limit, Pending) and the project's total (Project*). A limit of
// Unlimited means none is set.
type Quota struct {
	Usage          int64
	Limit          int64
	Pending        int64
	ProjectUsage   int64
	ProjectLimit   int64
	ProjectPending int64
}

// Unlimited reports whether nothing bounds this resource.
func (q Quota) Unlimited() bool {
	return q.Limit >= Unlimited && q.ProjectLimit >= Unlimited
}

// Free is what can still be used: the smaller of the user's and the
// project's remainders, pending commissions included; never negative;
// Unlimited when nothing bounds it.
func (q Quota) Free() int64 {
	if q.Unlimited() {
		return Unlimited
	}
	return min(remainder(q.Limit, q.Usage, q.Pending), remainder(q.ProjectLimit, q.ProjectUsage, q.ProjectPending))
}

func remainder(limit, usage, pending int64) int64 {
	if limit >= Unlimited {
		return Unlimited
	}
	r := limit - usage - pending
	if r < 0 {
		return 0
	}
	return r
}

// Quotas maps project uuid → resource name → counters.
type Quotas map[string]map[string]Quota

// quotaJSON accepts the counters as numbers of any size: a limit beyond
// int64 is treated as unlimited.
type quotaJSON struct {
	Usage          json.Number `json:"usage"`
	Limit          json.Number `json:"limit"`
	Pending        json.Number `json:"pending"`
	ProjectUsage   json.Number `json:"project_usage"`
	ProjectLimit   json.Number `json:"project_limit"`
	ProjectPending json.Number `json:"project_pending"`
}

func number(n json.Number) int64 {
	if n == "" {
		return 0
	}
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return v
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0
	}
	switch {
	case f >= math.MaxInt64:
		return Unlimited
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// accountClient is a rest client for the account service.
func (c *Client) accountClient(ctx context.Context) (*rest.Client, string, error) {
	u, err := c.EndpointURL(ctx, "account")
	if err != nil {
		return nil, "", err
	}
	return rest.New(u, c.token, c.doer), u, nil
}

// Quotas reads the user's quotas in every project (GET <account>/quotas).
func (c *Client) Quotas(ctx context.Context) (Quotas, error) {
	rc, u, err := c.accountClient(ctx)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Accept", "application/json")
	resp, err := rc.Do(ctx, &rest.Request{Method: http.MethodGet, Path: "/quotas", Header: h, Success: []int{http.StatusOK}})
	if err != nil {
		return nil, classify(err, "account service", u)
	}
	defer resp.Body.Close()
	var doc map[string]map[string]quotaJSON
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("astakos: reading %s/quotas: %w", u, err)
	}
	out := make(Quotas, len(doc))
	for project, resources := range doc {
		m := make(map[string]Quota, len(resources))
		for name, q := range resources {
			if q.ProjectLimit == "" {
				// An older Astakos reports only the user's share.
				q.ProjectLimit = json.Number(strconv.FormatInt(Unlimited, 10))
			}
			m[name] = Quota{
				Usage: number(q.Usage), Limit: number(q.Limit), Pending: number(q.Pending),
				ProjectUsage: number(q.ProjectUsage), ProjectLimit: number(q.ProjectLimit),
				ProjectPending: number(q.ProjectPending),
			}
		}
		out[project] = m
	}
	return out, nil
}

// Diskspace returns the pithos.diskspace counters of the default project
// (the one new containers are charged to).
func (c *Client) Diskspace(ctx context.Context) (Quota, error) {
	id, err := c.Authenticate(ctx)
	if err != nil {
		return Quota{}, err
	}
	qs, err := c.Quotas(ctx)
	if err != nil {
		return Quota{}, err
	}
	for _, p := range []string{id.DefaultProject, id.UserUUID} {
		if q, ok := qs[p][Diskspace]; ok {
			return q, nil
		}
	}
	return Quota{}, fmt.Errorf("astakos: no %s quota for project %s", Diskspace, id.DefaultProject)
}

// DiskspaceFree is the free storage in bytes of the default project;
// Unlimited (math.MaxInt64) when no limit is set. It fits
// pithos.UploadOptions.QuotaFree.
func (c *Client) DiskspaceFree(ctx context.Context) (int64, error) {
	q, err := c.Diskspace(ctx)
	if err != nil {
		return 0, err
	}
	return q.Free(), nil
}
