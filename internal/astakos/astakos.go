// Package astakos is a client for Synnefo's identity service: it turns a
// token into the user's uuid and the service catalog, picks endpoints from
// the catalog as kamaki does, and reads quotas and user names.
package astakos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/imagesync/imagesync/internal/rest"
)

// Identity is what authenticating a token yields.
type Identity struct {
	UserUUID string
	UserName string
	Token    string
	// Expires is the token's expiry; zero when the server did not say.
	Expires time.Time
	// DefaultProject is access.token.tenant.id (normally the user uuid).
	DefaultProject string
	Projects       []string
	Catalog        []Service
}

// Service is one service catalog entry.
type Service struct {
	Name      string
	Type      string
	Endpoints []Endpoint
}

// Endpoint is one endpoint of a service.
type Endpoint struct {
	VersionID string
	PublicURL string
	Region    string
	// Extra holds the other endpoint data (SNF:uiURL, SNF:exposeVersion…)
	// as strings.
	Extra map[string]string
}

// Client authenticates one token. It is safe for concurrent use; the
// identity is fetched once and cached until Invalidate or the token's
// expiry.
type Client struct {
	authURL string
	token   string
	doer    rest.Doer

	// sem serialises authentication (so concurrent callers share one
	// request) while letting waiters give up with their context.
	sem chan struct{}
	mu  sync.Mutex
	id  *Identity

	now func() time.Time
}

// versionSuffix is kamaki's strip_version test: a last segment like v2.0.
var versionSuffix = regexp.MustCompile(`/v\d+(\.\d+)?$`)

// withVersion appends "/<def>" to u unless it already ends in a version.
func withVersion(u, def string) string {
	u = strings.TrimRight(u, "/")
	if versionSuffix.MatchString(u) {
		return u
	}
	return u + "/" + def
}

// New returns a client for the identity URL (e.g.
// https://host/identity/v2.0; "/v2.0" is appended when no version is given).
func New(authURL, token string, doer rest.Doer) *Client {
	if doer == nil {
		doer = http.DefaultClient
	}
	return &Client{
		authURL: withVersion(authURL, "v2.0"),
		token:   token,
		doer:    doer,
		sem:     make(chan struct{}, 1),
		now:     time.Now,
	}
}

// AuthURL is the identity endpoint in use (with its version).
func (c *Client) AuthURL() string { return c.authURL }

// Invalidate forgets the cached identity: the next call authenticates again.
func (c *Client) Invalidate() {
	c.mu.Lock()
	c.id = nil
	c.mu.Unlock()
}

func (c *Client) cached() *Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != nil && (c.id.Expires.IsZero() || c.now().Before(c.id.Expires)) {
		return c.id
	}
	return nil
}

// Authenticate returns the token's identity and catalog, from the cache when
// it is there: POST <auth>/tokens with {"auth": {"token": {"id": TOKEN}}}.
// A rejected token is an *UnauthorizedError (errors.Is ErrUnauthorized).
func (c *Client) Authenticate(ctx context.Context) (*Identity, error) {
	if id := c.cached(); id != nil {
		return id, nil
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	// Someone else may have authenticated while we waited.
	if id := c.cached(); id != nil {
		return id, nil
	}
	id, err := c.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
	return id, nil
}

// accessDoc is the tokens reply; endpoints are decoded loosely because
// their data are whatever the deployment registered.
type accessDoc struct {
	Access struct {
		Token struct {
			ID      string `json:"id"`
			Expires string `json:"expires"`
			Tenant  struct {
				ID string `json:"id"`
			} `json:"tenant"`
		} `json:"token"`
		User struct {
			ID       string   `json:"id"`
			Name     string   `json:"name"`
			Projects []string `json:"projects"`
		} `json:"user"`
		ServiceCatalog []struct {
			Name      string           `json:"name"`
			Type      string           `json:"type"`
			Endpoints []map[string]any `json:"endpoints"`
		} `json:"serviceCatalog"`
	} `json:"access"`
}

func (c *Client) authenticate(ctx context.Context) (*Identity, error) {
	body, err := tokenBody(c.token)
	if err != nil {
		return nil, err
	}
	rc := rest.New(c.authURL, c.token, c.doer)
	resp, err := postJSON(ctx, rc, "/tokens", body)
	if err != nil {
		return nil, classify(err, "identity service", c.authURL)
	}
	defer resp.Body.Close()
	var doc accessDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("astakos: reading the reply of %s/tokens: %w", c.authURL, err)
	}
	a := doc.Access
	if a.User.ID == "" {
		return nil, fmt.Errorf("astakos: the reply of %s/tokens has no access.user.id", c.authURL)
	}
	id := &Identity{
		UserUUID:       a.User.ID,
		UserName:       a.User.Name,
		Token:          c.token,
		DefaultProject: a.Token.Tenant.ID,
		Projects:       a.User.Projects,
	}
	if id.DefaultProject == "" {
		id.DefaultProject = id.UserUUID
	}
	if a.Token.Expires != "" {
		t, err := time.Parse(time.RFC3339Nano, a.Token.Expires)
		if err != nil {
			return nil, fmt.Errorf("astakos: token expiry %q: %w", a.Token.Expires, err)
		}
		id.Expires = t
	}
	for _, s := range a.ServiceCatalog {
		svc := Service{Name: s.Name, Type: s.Type}
		for _, e := range s.Endpoints {
			svc.Endpoints = append(svc.Endpoints, parseEndpoint(e))
		}
		id.Catalog = append(id.Catalog, svc)
	}
	return id, nil
}

// tokenBody is the request body byte for byte as astakosclient sends it.
func tokenBody(token string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(token); err != nil {
		return nil, fmt.Errorf("astakos: encoding the token: %w", err)
	}
	return []byte(`{"auth": {"token": {"id": ` + strings.TrimSpace(b.String()) + `}}}`), nil
}

func parseEndpoint(m map[string]any) Endpoint {
	e := Endpoint{Extra: map[string]string{}}
	for k, v := range m {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case nil:
		case bool:
			// Deployments store endpoint data as strings ("True"); a
			// JSON boolean is rendered the same way.
			s = map[bool]string{true: "True", false: "False"}[x]
		default:
			raw, _ := json.Marshal(x)
			s = string(raw)
		}
		switch k {
		case "versionId":
			e.VersionID = s
		case "publicURL":
			e.PublicURL = s
		case "region":
			e.Region = s
		default:
			e.Extra[k] = s
		}
	}
	return e
}

// defaultVersions are the API versions kamaki's clients append to an
// endpoint published without one; Plankton's publicURL has none.
var defaultVersions = map[string]string{
	"image":        "v1.0",
	"object-store": "v1",
}

// EndpointURL returns the publicURL of the first catalog service of type
// serviceType (case-insensitive), which must have exactly one endpoint.
// For "image" and "object-store" a missing API version is appended, as
// kamaki does ("/v1.0" and "/v1").
func (c *Client) EndpointURL(ctx context.Context, serviceType string) (string, error) {
	id, err := c.Authenticate(ctx)
	if err != nil {
		return "", err
	}
	return id.EndpointURL(serviceType)
}

// EndpointURL picks an endpoint from the identity's catalog (see
// Client.EndpointURL).
func (id *Identity) EndpointURL(serviceType string) (string, error) {
	for _, s := range id.Catalog {
		if !strings.EqualFold(s.Type, serviceType) {
			continue
		}
		if len(s.Endpoints) != 1 {
			return "", &CatalogError{ServiceType: serviceType, Msg: fmt.Sprintf("%d endpoints, want exactly one", len(s.Endpoints))}
		}
		u := strings.TrimRight(s.Endpoints[0].PublicURL, "/")
		if u == "" {
			return "", &CatalogError{ServiceType: serviceType, Msg: "endpoint without a publicURL"}
		}
		if def, ok := defaultVersions[strings.ToLower(serviceType)]; ok {
			u = withVersion(u, def)
		}
		return u, nil
	}
	return "", &CatalogError{ServiceType: serviceType, Msg: "not in the catalog"}
}

// postJSON POSTs a JSON body to path and expects 200 with JSON, as both
// Astakos POST calls (tokens, user_catalogs) do.
func postJSON(ctx context.Context, rc *rest.Client, path string, body []byte) (*http.Response, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	return rc.Do(ctx, &rest.Request{
		Method:        http.MethodPost,
		Path:          path,
		Header:        h,
		Body:          bytes.NewReader(body),
		ContentLength: int64(len(body)),
		Success:       []int{http.StatusOK},
	})
}
