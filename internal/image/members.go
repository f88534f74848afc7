package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/imagesync/imagesync/internal/rest"
)

// An image's members are the users in its Pithos object's read share,
// "everybody" ('*', i.e. is-public) excluded. Only the owner may change
// them. A (re-)registration resets the share to the owner alone (plus '*'
// when public), so the owner is usually listed too and members are dropped.

var memberHints = map[int]string{
	http.StatusNotFound:  "no such image",
	http.StatusForbidden: "permission denied: only the image's owner can change who it is shared with",
}

// ListMembers returns the users the image is shared with, as the server
// lists them: GET /images/<id>/members. Right after a registration this is
// just the owner; see OtherMembers.
func (c *Client) ListMembers(ctx context.Context, id string) ([]string, error) {
	op := fmt.Sprintf("list members of image %s", id)
	if err := checkSegment("image id", id); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var doc struct {
		Members []struct {
			MemberID string `json:"member_id"`
		} `json:"members"`
	}
	if err := c.getJSON(ctx, op, &rest.Request{Method: http.MethodGet, Path: "/images/" + id + "/members"}, &doc, map[int]string{
		http.StatusNotFound:  "no such image",
		http.StatusForbidden: "the image is not shared with this user",
	}); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(doc.Members))
	for _, m := range doc.Members {
		out = append(out, m.MemberID)
	}
	return out, nil
}

// SetMembers replaces the image's members: PUT /images/<id>/members with
// {"memberships": [{"member_id": …}, …]}. Whether the image is public is not
// affected. An empty list shares it with nobody.
func (c *Client) SetMembers(ctx context.Context, id string, members []string) error {
	op := fmt.Sprintf("set members of image %s", id)
	if err := checkSegment("image id", id); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	type membership struct {
		MemberID string `json:"member_id"`
	}
	doc := struct {
		Memberships []membership `json:"memberships"`
	}{Memberships: make([]membership, 0, len(members))}
	for _, m := range members {
		if err := checkMember(m); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		doc.Memberships = append(doc.Memberships, membership{m})
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = c.rc.DoDiscard(ctx, &rest.Request{
		Method:        http.MethodPut,
		Path:          "/images/" + id + "/members",
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          bytes.NewReader(body),
		ContentLength: int64(len(body)),
		Success:       []int{http.StatusNoContent},
	})
	if err != nil {
		return explain(op, err, memberHints)
	}
	return nil
}

// AddMember shares the image with one user: PUT /images/<id>/members/<uuid>.
func (c *Client) AddMember(ctx context.Context, id, member string) error {
	return c.changeMember(ctx, http.MethodPut, fmt.Sprintf("share image %s with %s", id, member), id, member)
}

// RemoveMember stops sharing the image with one user (no error if it was
// not shared with them): DELETE /images/<id>/members/<uuid>.
func (c *Client) RemoveMember(ctx context.Context, id, member string) error {
	return c.changeMember(ctx, http.MethodDelete, fmt.Sprintf("stop sharing image %s with %s", id, member), id, member)
}

func (c *Client) changeMember(ctx context.Context, method, op, id, member string) error {
	if err := checkSegment("image id", id); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := checkMember(member); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err := c.rc.DoDiscard(ctx, &rest.Request{Method: method, Path: "/images/" + id + "/members/" + member, Success: []int{http.StatusNoContent}})
	if err != nil {
		return explain(op, err, memberHints)
	}
	return nil
}

// checkMember rejects what is not a user uuid: '*' is not a member (use
// is-public), and ',', ';', '=' would corrupt the Pithos sharing string.
func checkMember(m string) error {
	if err := checkSegment("member", m); err != nil {
		return err
	}
	if m == "*" {
		return fmt.Errorf(`member "*" means everybody: make the image public instead`)
	}
	for _, r := range m {
		if r <= ' ' || r == ',' || r == ';' || r == '=' || r == 0x7f {
			return fmt.Errorf("member %q is not a user uuid", m)
		}
	}
	return nil
}

// ListShared returns the ids of the images owned by member that are shared
// with the caller and are not public: GET /shared-images/<member>.
func (c *Client) ListShared(ctx context.Context, member string) ([]string, error) {
	op := fmt.Sprintf("list images shared by %s", member)
	if err := checkSegment("member", member); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var doc struct {
		SharedImages []struct {
			ImageID string `json:"image_id"`
		} `json:"shared_images"`
	}
	if err := c.getJSON(ctx, op, &rest.Request{Method: http.MethodGet, Path: "/shared-images/" + member}, &doc, nil); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(doc.SharedImages))
	for _, s := range doc.SharedImages {
		out = append(out, s.ImageID)
	}
	return out, nil
}

// OtherMembers is members without owner: the owner can always read their
// image, and a registration puts them in the read share, so the member list
// the server reports usually contains them without anybody having asked.
func OtherMembers(members []string, owner string) []string {
	out := make([]string, 0, len(members))
	for _, m := range members {
		if m != owner {
			out = append(out, m)
		}
	}
	return out
}
