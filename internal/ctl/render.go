package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rivo/uniseg"
)

// emitJSON writes v as one indented JSON document.
func (a *app) emitJSON(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	return a.writeRaw(buf.Bytes())
}

// table collects rows and renders them aligned by display width (a CJK
// character or an emoji takes two columns), two spaces between columns. The
// last cell of a row is not padded. Cells are escaped (escapeText): pass
// them raw.
type table struct {
	buf  *bytes.Buffer
	rows [][]string
}

func newTable(buf *bytes.Buffer, header ...string) *table {
	t := &table{buf: buf}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = escapeText(c)
	}
	t.rows = append(t.rows, row)
}

func (t *table) flush() {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r[:max(len(r)-1, 0)] {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], uniseg.StringWidth(c))
		}
	}
	for _, r := range t.rows {
		for i, c := range r {
			t.buf.WriteString(c)
			if i < len(r)-1 {
				t.buf.WriteString(strings.Repeat(" ", widths[i]-uniseg.StringWidth(c)+2))
			}
		}
		t.buf.WriteByte('\n')
	}
	t.rows = nil
}

// timePtr is nil for the zero time, so JSON shows null for "never".
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// bytesHuman renders a byte count with binary units.
func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func rateHuman(bps float64) string {
	if bps <= 0 || math.IsNaN(bps) || math.IsInf(bps, 0) {
		return "-"
	}
	return bytesHuman(int64(bps)) + "/s"
}

// durHuman renders a duration the way people read elapsed time.
func durHuman(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Second:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// ago renders t relative to now ("3m12s ago", "in 40s").
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if t.After(now) {
		return "in " + durHuman(t.Sub(now))
	}
	return durHuman(now.Sub(t)) + " ago"
}

// bar draws a fixed-width progress bar; frac < 0 means unknown.
func bar(frac float64, width int) string {
	if frac < 0 {
		return "[" + strings.Repeat("·", width) + "]"
	}
	frac = min(max(frac, 0), 1)
	full := int(math.Round(frac * float64(width)))
	return "[" + strings.Repeat("█", full) + strings.Repeat("░", width-full) + "]"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func jsonIndent(buf *bytes.Buffer, raw []byte) error { return json.Indent(buf, raw, "", "  ") }

// compactJSON encodes v on one line (newline-delimited JSON for --watch).
func compactJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding JSON: %w", err)
	}
	return buf.Bytes(), nil
}
