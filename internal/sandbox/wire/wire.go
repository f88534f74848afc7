// Package wire renders what Synnefo's Python renders, for the sandbox's
// three services: json.dumps' bytes, snf_django's fault bodies and common
// headers, Python 2's urllib quoting, Django's JSON body checks.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PyJSON renders v the way Python's json.dumps does by default: ", " and ": "
// separators, non-ASCII escaped. Synnefo bodies are produced that way, and a
// faithful sandbox sends the same bytes.
func PyJSON(v any) []byte {
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
	case Ordered:
		buf.WriteByte('{')
		for i, kv := range x {
			if i > 0 {
				buf.WriteString(", ")
			}
			writePyString(buf, kv[0].(string))
			buf.WriteString(": ")
			writePy(buf, kv[1])
		}
		buf.WriteByte('}')
	default:
		b, _ := json.Marshal(x)
		buf.Write(b)
	}
}

// Ordered is a JSON object whose key order is kept: a list of
// {key, value} pairs.
type Ordered []KV

// KV is one key (a string) and its value.
type KV = [2]any

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

// SetCommonHeaders adds what Synnefo's api_method adds to every response.
func SetCommonHeaders(h http.Header) {
	h.Set("Vary", "X-Auth-Token")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate, max-age=0")
	h.Set("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")
}

const (
	JSONType = "application/json; charset=UTF-8"
	TextType = "text/plain; charset=UTF-8"
	XMLType  = "application/xml; charset=UTF-8"
)

// WriteJSON sends a success body rendered like Python's json.dumps.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body := PyJSON(v)
	SetCommonHeaders(w.Header())
	w.Header().Set("Content-Type", JSONType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteEmpty sends a body-less answer with a JSON content type, as Synnefo
// does for 201/202/204 replies.
func WriteEmpty(w http.ResponseWriter, status int) {
	SetCommonHeaders(w.Header())
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", JSONType)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// Fault names as Synnefo renders them (class name, first letter lowercased).
const (
	FaultBadRequest         = "badRequest"
	FaultUnauthorized       = "unauthorized"
	FaultForbidden          = "forbidden"
	FaultNotFound           = "itemNotFound"
	FaultNotAllowed         = "notAllowed"
	FaultConflict           = "conflict"
	FaultLengthRequired     = "lengthRequired"
	FaultPreconditionFailed = "preconditionFailed"
	FaultTooLarge           = "requestEntityTooLarge"
	FaultOverLimit          = "overLimit"
	FaultRangeNotSatisfied  = "rangeNotSatisfiable"
	FaultUnprocessable      = "unprocessableEntity"
	FaultInternal           = "internalServerError"
	FaultNotImplemented     = "notImplemented"
	FaultUnavailable        = "serviceUnavailable"
	FaultGeneric            = "fault" // errors relayed from Astakos (401 token, 413 commission)
)

// WriteFault sends {"<name>": {"code": N, "message": M, "details": D}} with
// status N. HEAD answers carry no body.
func WriteFault(w http.ResponseWriter, r *http.Request, code int, name, message, details string) {
	body := PyJSON(Ordered{{name, Ordered{{"code", code}, {"message", message}, {"details", details}}}})
	SetCommonHeaders(w.Header())
	w.Header().Set("Content-Type", JSONType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// NotAllowed answers 405 with an Allow header.
func NotAllowed(w http.ResponseWriter, r *http.Request, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ","))
	WriteFault(w, r, http.StatusMethodNotAllowed, FaultNotAllowed, "Method not allowed", "")
}

// EndpointNotFound is Synnefo's answer to an unknown path under a service.
func EndpointNotFound(w http.ResponseWriter, r *http.Request) {
	WriteFault(w, r, http.StatusBadRequest, FaultBadRequest, "API endpoint not found", "")
}

// BaseURL is the scheme and host clients used to reach us; catalog entries
// and public URLs are built from it.
func BaseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// PyBool is Python's str() of a bool.
func PyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// Unquote is Python 2's urllib.unquote, which Pithos applies to request
// headers and Plankton to image metadata: valid %XX escapes are decoded,
// anything else (a malformed escape, '+') is kept as it is.
func Unquote(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && IsHex(s[i+1]) && IsHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// Quote is Python 2's urllib.quote(s, safe): letters, digits, "_.-" and the
// safe characters stay, every other byte becomes %XX (upper case).
func Quote(s, safe string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '_' || c == '.' || c == '-' || strings.IndexByte(safe, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// LoadsJSON parses a request body the way json.loads does for these views:
// syntax errors first, then (for syntactically valid documents) bytes that
// are not UTF-8.
func LoadsJSON(body []byte) (any, string) {
	if !json.Valid(body) {
		return nil, "Could not decode request body as JSON"
	}
	if !utf8.Valid(body) {
		return nil, "Could not decode request as UTF-8 string"
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, "Could not decode request body as JSON"
	}
	return v, ""
}

// GetJSONBody is snf_django's get_json_body: Content-Type checks, then JSON.
func GetJSONBody(r *http.Request) (any, string) {
	cts, ok := r.Header["Content-Type"]
	if !ok || len(cts) == 0 {
		return nil, "Missing Content-Type header field"
	}
	if ct := cts[0]; !strings.HasPrefix(ct, "application/json") {
		return nil, fmt.Sprintf("Unsupported Content-type: '%s'", ct)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxJSONBody))
	if err != nil {
		return nil, "Could not decode request body as JSON"
	}
	return LoadsJSON(body)
}

// MaxJSONBody bounds the JSON request bodies read into memory (tokens,
// user_catalogs, image members); real requests are a few hundred bytes.
const MaxJSONBody = 4 << 20
