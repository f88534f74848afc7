package image

import (
	"context"
	"fmt"
)

// Publish makes the image public or private and shares it with exactly
// members, writing only what differs: X-Image-Meta-Is-Public through an
// update when it is not already so, and the member list when it is not
// already that list. It reads the image and its members first, so running
// it again changes nothing and sends no writes. changed reports whether
// anything was written.
//
// The owner is never counted as a member (a registration puts them in the
// read share, and they can always read their image), so a fresh
// registration with no members wanted needs no write. Run Publish after
// every (re-)registration: a registration drops the members.
func (c *Client) Publish(ctx context.Context, id string, public bool, members []string) (changed bool, err error) {
	op := fmt.Sprintf("publish image %s", id)
	if err := checkSegment("image id", id); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	for _, m := range members {
		if err := checkMember(m); err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
	}
	img, err := c.Get(ctx, id)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	current, err := c.ListMembers(ctx, id)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	want := OtherMembers(members, img.Owner)
	add, remove := DiffMembers(want, OtherMembers(current, img.Owner))

	if img.IsPublic != public {
		if _, err := c.Update(ctx, id, UpdateParams{IsPublic: &public}); err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
		changed = true
	}
	if len(add) > 0 || len(remove) > 0 {
		// Replacing the list keeps '*' (public) as it is.
		if err := c.SetMembers(ctx, id, dedupe(want)); err != nil {
			return changed, fmt.Errorf("%s: %w", op, err)
		}
		changed = true
	}
	return changed, nil
}

func dedupe(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
