// Package pithos is a client for the Pithos+ object store: containers,
// objects, metadata, sharing, versions, and the hashmap upload/download
// engine that moves only the blocks the server does not already have.
package pithos

import (
	"strings"

	"github.com/imagesync/imagesync/internal/rest"
)

// Client talks to one Pithos+ account. Endpoint is the catalog's object-store
// publicURL (e.g. https://host/object-store/v1); Account is the user uuid.
type Client struct {
	rest    *rest.Client
	Account string

	// blockInfos caches each container's block size and hash (upload.go).
	blockInfos blockInfoCache

	// listPage is the entries asked for per listing request; 0 means the
	// server's cap. Tests lower it to exercise paging.
	listPage int
}

// New returns a client. doer is usually a *rest.Retrying around an *http.Client.
func New(endpoint, account, token string, doer rest.Doer) *Client {
	return &Client{rest: rest.New(strings.TrimRight(endpoint, "/"), token, doer), Account: account}
}

// accountPath, containerPath and objectPath are unescaped; rest escapes each segment.
func (c *Client) accountPath() string { return "/" + c.Account }

func (c *Client) containerPath(container string) string {
	return "/" + c.Account + "/" + container
}

func (c *Client) objectPath(container, object string) string {
	return "/" + c.Account + "/" + container + "/" + object
}

// ForAccount returns a client for another account's containers (to read
// what is shared with this user), with the same token and HTTP stack.
func (c *Client) ForAccount(account string) *Client {
	return &Client{rest: c.rest, Account: account, listPage: c.listPage}
}
