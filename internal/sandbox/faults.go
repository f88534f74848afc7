package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// pyJSON renders v the way Python's json.dumps does by default: ", " and ": "
// separators, non-ASCII escaped. Synnefo bodies are produced that way, and a
// faithful sandbox sends the same bytes.
func pyJSON(v any) []byte {
	var buf bytes.Buffer
	writePy(&buf, v)
	return buf.Bytes()
}

func writePy(buf *bytes.Buffer, v any) {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case string:
		writePyString(buf, x)
	case bool:
		if x {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case int:
		buf.WriteString(strconv.Itoa(x))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case float64:
		buf.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
	case []string:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteString(", ")
			}
			writePyString(buf, e)
		}
		buf.WriteByte(']')
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteString(", ")
			}
			writePy(buf, e)
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteString(", ")
			}
			writePyString(buf, k)
			buf.WriteString(": ")
			writePy(buf, x[k])
		}
		buf.WriteByte('}')
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[k] = v
		}
		writePy(buf, m)
	case ordered:
		buf.WriteByte('{')
		for i, kv := range x {
			if i > 0 {
				buf.WriteString(", ")
			}
			writePyString(buf, kv.K)
			buf.WriteString(": ")
			writePy(buf, kv.V)
		}
		buf.WriteByte('}')
	default:
		b, _ := json.Marshal(x)
		buf.Write(b)
	}
}

// ordered is a JSON object whose key order is kept.
type ordered []kv

type kv struct {
	K string
	V any
}

func writePyString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			buf.WriteString(`\"`)
		case r == '\\':
			buf.WriteString(`\\`)
		case r == '\n':
			buf.WriteString(`\n`)
		case r == '\r':
			buf.WriteString(`\r`)
		case r == '\t':
			buf.WriteString(`\t`)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				r -= 0x10000
				buf.WriteString(`\u` + hex4(0xd800+(r>>10)) + `\u` + hex4(0xdc00+(r&0x3ff)))
			} else {
				buf.WriteString(`\u` + hex4(r))
			}
		default:
			buf.WriteRune(r)
		}
	}
	buf.WriteByte('"')
}

func hex4(r rune) string {
	s := strconv.FormatInt(int64(r), 16)
	return strings.Repeat("0", 4-len(s)) + s
}

// setCommonHeaders adds what Synnefo's api_method adds to every response.
func setCommonHeaders(h http.Header) {
	h.Set("Vary", "X-Auth-Token")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate, max-age=0")
	h.Set("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")
}

const (
	ctJSON = "application/json; charset=UTF-8"
	ctText = "text/plain; charset=UTF-8"
	ctXML  = "application/xml; charset=UTF-8"
)

// writeJSON sends a success body rendered like Python's json.dumps.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body := pyJSON(v)
	setCommonHeaders(w.Header())
	w.Header().Set("Content-Type", ctJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeEmpty sends a body-less answer with a JSON content type, as Synnefo
// does for 201/202/204 replies.
func writeEmpty(w http.ResponseWriter, status int) {
	setCommonHeaders(w.Header())
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", ctJSON)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// Fault names as Synnefo renders them (class name, first letter lowercased).
const (
	faultBadRequest         = "badRequest"
	faultUnauthorized       = "unauthorized"
	faultForbidden          = "forbidden"
	faultNotFound           = "itemNotFound"
	faultNotAllowed         = "notAllowed"
	faultConflict           = "conflict"
	faultLengthRequired     = "lengthRequired"
	faultPreconditionFailed = "preconditionFailed"
	faultTooLarge           = "requestEntityTooLarge"
	faultOverLimit          = "overLimit"
	faultRangeNotSatisfied  = "rangeNotSatisfiable"
	faultUnprocessable      = "unprocessableEntity"
	faultInternal           = "internalServerError"
	faultNotImplemented     = "notImplemented"
	faultUnavailable        = "serviceUnavailable"
	faultGeneric            = "fault" // errors relayed from Astakos (401 token, 413 commission)
)

// writeFault sends {"<name>": {"code": N, "message": M, "details": D}} with
// status N. HEAD answers carry no body.
func writeFault(w http.ResponseWriter, r *http.Request, code int, name, message, details string) {
	body := pyJSON(ordered{{name, ordered{{"code", code}, {"message", message}, {"details", details}}}})
	setCommonHeaders(w.Header())
	w.Header().Set("Content-Type", ctJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// notAllowed answers 405 with an Allow header.
func notAllowed(w http.ResponseWriter, r *http.Request, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ","))
	writeFault(w, r, http.StatusMethodNotAllowed, faultNotAllowed, "Method not allowed", "")
}

// endpointNotFound is Synnefo's answer to an unknown path under a service.
func endpointNotFound(w http.ResponseWriter, r *http.Request) {
	writeFault(w, r, http.StatusBadRequest, faultBadRequest, "API endpoint not found", "")
}
