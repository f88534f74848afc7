package astakos

import (
	"context"
	"encoding/json"
	"fmt"
)

// UserNames maps user uuids to display names (POST <account>/user_catalogs
// with {"uuids": […]}). Unknown uuids are absent from the result.
func (c *Client) UserNames(ctx context.Context, uuids []string) (map[string]string, error) {
	if len(uuids) == 0 {
		return map[string]string{}, nil
	}
	rc, u, err := c.accountClient(ctx)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string][]string{"uuids": uuids})
	if err != nil {
		return nil, fmt.Errorf("astakos: encoding user_catalogs request: %w", err)
	}
	resp, err := postJSON(ctx, rc, "/user_catalogs", body)
	if err != nil {
		return nil, classify(err, "account service", u)
	}
	defer resp.Body.Close()
	var doc struct {
		UUIDCatalog map[string]string `json:"uuid_catalog"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("astakos: reading %s/user_catalogs: %w", u, err)
	}
	if doc.UUIDCatalog == nil {
		doc.UUIDCatalog = map[string]string{}
	}
	return doc.UUIDCatalog, nil
}
