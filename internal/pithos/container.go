package pithos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imagesync/imagesync/internal/rest"
)

// ContainerInfo is what a container HEAD reports.
type ContainerInfo struct {
	Name        string
	BlockSize   int64
	BlockHash   string
	ObjectCount int64
	BytesUsed   int64
	// Versioning is "auto" (history kept) or "none".
	Versioning string
	// Quota is the container's byte limit; 0 is unlimited.
	Quota   int64
	Project string
	// Meta holds the X-Container-Meta-* entries, keys lowercased.
	Meta         map[string]string
	LastModified time.Time
}

// ContainerOptions are the policies and metadata of a container PUT. The
// server merges them into an existing container's, so a zero value changes
// nothing.
type ContainerOptions struct {
	// Versioning is "auto" or "none"; empty leaves the policy alone.
	Versioning string
	// Quota, if not nil, sets the container's byte limit (0 = unlimited).
	Quota *int64
	// Project, if set, charges the container to that Astakos project.
	Project string
	// Meta are X-Container-Meta-* entries; an empty value deletes the key.
	Meta map[string]string
}

// ContainerInfo reads a container's headers (HEAD, 204). A missing container
// is a *rest.Error with status 404 (IsNotFound).
func (c *Client) ContainerInfo(ctx context.Context, container string) (*ContainerInfo, error) {
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:  http.MethodHead,
		Path:    c.containerPath(container),
		Success: []int{http.StatusNoContent, http.StatusOK},
	})
	if err != nil {
		return nil, err
	}
	return parseContainerHeaders(container, resp.Header)
}

func parseContainerHeaders(container string, h http.Header) (*ContainerInfo, error) {
	ci := &ContainerInfo{
		Name:       container,
		BlockHash:  headerValue(h, "X-Container-Block-Hash"),
		Versioning: headerValue(h, "X-Container-Policy-Versioning"),
		Project:    headerValue(h, "X-Container-Policy-Project"),
		Meta:       metaHeaders(h, "X-Container-Meta-"),
	}
	var err error
	if ci.BlockSize, err = intHeader(h, "X-Container-Block-Size"); err != nil {
		return nil, fmt.Errorf("pithos: container %s: %w", container, err)
	}
	if ci.ObjectCount, err = intHeader(h, "X-Container-Object-Count"); err != nil {
		return nil, fmt.Errorf("pithos: container %s: %w", container, err)
	}
	if ci.BytesUsed, err = intHeader(h, "X-Container-Bytes-Used"); err != nil {
		return nil, fmt.Errorf("pithos: container %s: %w", container, err)
	}
	if ci.Quota, err = intHeader(h, "X-Container-Policy-Quota"); err != nil {
		return nil, fmt.Errorf("pithos: container %s: %w", container, err)
	}
	ci.LastModified = timeHeader(h, "Last-Modified")
	return ci, nil
}

// CreateContainer creates container (201 → true) or, when it exists (202 →
// false), merges opts' policies and metadata into it.
func (c *Client) CreateContainer(ctx context.Context, container string, opts *ContainerOptions) (created bool, err error) {
	h := http.Header{}
	if opts != nil {
		if opts.Quota != nil {
			if *opts.Quota < 0 {
				return false, fmt.Errorf("pithos: container %s: negative quota %d", container, *opts.Quota)
			}
			h.Set("X-Container-Policy-Quota", strconv.FormatInt(*opts.Quota, 10))
		}
		switch opts.Versioning {
		case "", "auto", "none":
			setIf(h, "X-Container-Policy-Versioning", opts.Versioning)
		default:
			return false, fmt.Errorf("pithos: container %s: versioning %q: want auto or none", container, opts.Versioning)
		}
		setIf(h, "X-Container-Policy-Project", opts.Project)
		setMetaHeaders(h, "X-Container-Meta-", opts.Meta)
	}
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:  http.MethodPut,
		Path:    c.containerPath(container),
		Header:  h,
		Success: []int{http.StatusCreated, http.StatusAccepted},
	})
	if err != nil {
		return false, err
	}
	return resp.StatusCode == http.StatusCreated, nil
}

// DeleteContainer deletes an empty container (204). A non-empty one is a 409
// (IsConflict).
func (c *Client) DeleteContainer(ctx context.Context, container string) error {
	_, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:  http.MethodDelete,
		Path:    c.containerPath(container),
		Success: []int{http.StatusNoContent},
	})
	return err
}

// ContainerEntry is one item of the account's container listing.
type ContainerEntry struct {
	Name         string
	Count        int64
	Bytes        int64
	LastModified time.Time
	Quota        int64
	Versioning   string
	Project      string
}

type containerJSON struct {
	Name         string `json:"name"`
	Count        int64  `json:"count"`
	Bytes        int64  `json:"bytes"`
	LastModified string `json:"last_modified"`
	Policy       struct {
		Quota      flexInt `json:"quota"`
		Versioning string  `json:"versioning"`
		Project    string  `json:"project"`
	} `json:"x_container_policy"`
}

// ListContainers lists the account's containers, paging past the server's
// per-request cap.
func (c *Client) ListContainers(ctx context.Context) ([]ContainerEntry, error) {
	var out []ContainerEntry
	marker := ""
	for {
		q := []rest.Param{{Key: "format", Value: "json"}, {Key: "limit", Value: strconv.Itoa(c.pageSize())}}
		if marker != "" {
			q = append(q, rest.Param{Key: "marker", Value: marker})
		}
		resp, err := c.rest.Do(ctx, &rest.Request{
			Method:  http.MethodGet,
			Path:    c.accountPath(),
			Query:   q,
			Success: []int{http.StatusOK, http.StatusNoContent},
		})
		if err != nil {
			return nil, err
		}
		var page []containerJSON
		err = decodeListing(resp, &page)
		if err != nil {
			return nil, fmt.Errorf("pithos: listing containers: %w", err)
		}
		for _, e := range page {
			ce := ContainerEntry{
				Name: e.Name, Count: e.Count, Bytes: e.Bytes,
				LastModified: parseListTime(e.LastModified),
				Quota:        int64(e.Policy.Quota),
				Versioning:   e.Policy.Versioning, Project: e.Policy.Project,
			}
			out = append(out, ce)
		}
		if len(page) < c.pageSize() {
			return out, nil
		}
		marker = page[len(page)-1].Name
	}
}

// decodeListing reads a JSON listing body; a 204 (or empty body) is an empty
// list. It closes the body.
func decodeListing(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return nil
		}
		return err
	}
	return nil
}

// AccountInfo is what an account HEAD reports.
type AccountInfo struct {
	ContainerCount int64
	BytesUsed      int64
	// Quota is X-Account-Policy-Quota; 0 is unlimited or unknown.
	Quota        int64
	Meta         map[string]string
	Groups       map[string][]string
	LastModified time.Time
}

// AccountInfo reads the account's headers (HEAD, 204).
func (c *Client) AccountInfo(ctx context.Context) (*AccountInfo, error) {
	resp, err := c.rest.DoDiscard(ctx, &rest.Request{
		Method:  http.MethodHead,
		Path:    c.accountPath(),
		Success: []int{http.StatusNoContent, http.StatusOK},
	})
	if err != nil {
		return nil, err
	}
	h := resp.Header
	ai := &AccountInfo{Meta: metaHeaders(h, "X-Account-Meta-"), LastModified: timeHeader(h, "Last-Modified")}
	if ai.ContainerCount, err = intHeader(h, "X-Account-Container-Count"); err != nil {
		return nil, fmt.Errorf("pithos: account %s: %w", c.Account, err)
	}
	if ai.BytesUsed, err = intHeader(h, "X-Account-Bytes-Used"); err != nil {
		return nil, fmt.Errorf("pithos: account %s: %w", c.Account, err)
	}
	if ai.Quota, err = intHeader(h, "X-Account-Policy-Quota"); err != nil {
		return nil, fmt.Errorf("pithos: account %s: %w", c.Account, err)
	}
	for name, members := range metaHeaders(h, "X-Account-Group-") {
		if ai.Groups == nil {
			ai.Groups = map[string][]string{}
		}
		ai.Groups[name] = splitList(members)
	}
	return ai, nil
}

// splitList splits a comma list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
