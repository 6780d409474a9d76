package cloudsim

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

const contentTypeJSON = "application/json; charset=UTF-8"

// reply is a fully rendered answer; it is built before anything is written so a
// "lost response" fault can still decide to drop it.
type reply struct {
	status int
	body   []byte
}

// responseKey is the single top-level key of every body: the command name in
// lower case + "response" ("errorresponse" when the command is unknown).
func responseKey(command string) string { return strings.ToLower(command) + "response" }

func envelope(status int, key string, payload any) reply {
	inner, err := json.Marshal(payload)
	if err != nil {
		// Payloads are the simulator's own types; failing to marshal one is a bug.
		panic("cloudsim: marshal " + key + ": " + err.Error())
	}
	var b bytes.Buffer
	b.WriteString(`{"`)
	b.WriteString(key)
	b.WriteString(`":`)
	b.Write(inner)
	b.WriteString("}")
	return reply{status: status, body: b.Bytes()}
}

// errorPayload is ExceptionResponse as ApiResponseSerializer writes it.
type errorPayload struct {
	UUIDList    []string `json:"uuidList"`
	ErrorCode   int      `json:"errorcode"`
	CSErrorCode int      `json:"cserrorcode,omitempty"`
	ErrorText   string   `json:"errortext"`
}

func errorReply(key string, e *apiError) reply {
	return envelope(e.Code, key, errorPayload{UUIDList: []string{}, ErrorCode: e.Code, CSErrorCode: e.CSCode, ErrorText: e.Text})
}

// listPayload is a list response. CloudStack omits both "count" and the list when
// nothing matched, so the empty answer is "{}", and it reports in "count" the
// number of matches before paging.
type listPayload struct {
	key   string
	total int
	items []any
}

func (l listPayload) MarshalJSON() ([]byte, error) {
	if l.total == 0 {
		return []byte("{}"), nil
	}
	var b bytes.Buffer
	b.WriteString(`{"count":`)
	b.WriteString(strconv.Itoa(l.total))
	if len(l.items) > 0 {
		items, err := json.Marshal(l.items)
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"` + l.key + `":`)
		b.Write(items)
	}
	b.WriteString("}")
	return b.Bytes(), nil
}
