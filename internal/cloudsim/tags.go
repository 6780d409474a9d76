package cloudsim

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// tagParam matches the map encoding "tags[N].key" / "tags[N].value".
var tagParam = regexp.MustCompile(`^tags\[(\d{1,9})\]\.(key|value)$`)

// parseTagParams collects tags[N].key/value pairs in index order. An entry
// without a key is dropped; one without a value has Value "" and hasValue false.
func parseTagParams(params url.Values) []tagFilter {
	byIndex := map[int]*tagFilter{}
	for name, values := range params {
		m := tagParam.FindStringSubmatch(name)
		if m == nil || len(values) == 0 {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		t := byIndex[i]
		if t == nil {
			t = &tagFilter{}
			byIndex[i] = t
		}
		if m[2] == "key" {
			t.Key = values[0]
		} else {
			t.Value, t.hasValue = values[0], true
		}
	}
	indexes := make([]int, 0, len(byIndex))
	for i, t := range byIndex {
		if t.Key != "" {
			indexes = append(indexes, i)
		}
	}
	sort.Ints(indexes)
	out := make([]tagFilter, len(indexes))
	for n, i := range indexes {
		out[n] = *byIndex[i]
	}
	return out
}

type tagFilter struct {
	Tag
	hasValue bool
}

// tagJSON is ResourceTagResponse.
type tagJSON struct {
	Key          string `json:"key"`
	Value        string `json:"value"`
	ResourceType string `json:"resourcetype"`
	ResourceID   string `json:"resourceid"`
	Account      string `json:"account"`
	DomainID     string `json:"domainid"`
	Domain       string `json:"domain"`
}

func (s *Simulator) tagsJSON(v *Volume) []tagJSON {
	out := make([]tagJSON, 0, len(v.Tags))
	for _, t := range v.Tags {
		j := tagJSON{Key: t.Key, Value: t.Value, ResourceType: "Volume", ResourceID: v.ID, Account: v.Account}
		if a := s.world.account(v.Account); a != nil {
			j.DomainID, j.Domain = a.DomainID, a.Domain
		}
		out = append(out, j)
	}
	return out
}

// resourceTypeParam resolves "resourcetype" as getResourceType does (any case).
// Only volumes carry tags in the simulator; other types are real CloudStack
// types it does not model, rejected like unknown ones.
func (c *call) resourceTypeParam() *apiError {
	rt := c.param("resourcetype")
	if !strings.EqualFold(rt, "Volume") {
		return errInvalid("Invalid resource type %s", rt)
	}
	return nil
}

func resourceIDs(list string) []string {
	var ids []string
	for _, id := range strings.Split(list, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

func createTags(c *call) (any, *apiError) {
	if len(parseTagParams(c.params)) == 0 {
		return nil, errMissing(c.apiName(), "tags")
	}
	if _, err := c.require("resourcetype"); err != nil {
		return nil, err
	}
	if _, err := c.require("resourceids"); err != nil {
		return nil, err
	}
	if err := c.resourceTypeParam(); err != nil {
		return nil, err
	}
	for _, id := range resourceIDs(c.param("resourceids")) {
		if err := c.checkAccess(c.s.volumeOwner(id)); err != nil {
			return nil, err
		}
	}
	return jobID{c.startJob("", "")}, nil
}

// completeCreateTags applies all tags or none, as the transaction does; the
// unique key (resource, type, key) makes a repeated key fail the whole job.
func completeCreateTags(s *Simulator, j *Job) (any, *apiError) {
	tags := parseTagParams(j.values())
	var vols []*Volume
	for _, id := range resourceIDs(j.param("resourceids")) {
		v := s.volumes[id]
		if v == nil {
			return nil, errInvalid("Unable to find resource by uuid %s and type Volume", id)
		}
		vols = append(vols, v)
	}
	for _, t := range tags {
		if t.Value == "" {
			return nil, errInvalid("Value for the key %s is either null or empty", t.Key)
		}
		for _, v := range vols {
			for _, have := range v.Tags {
				if strings.EqualFold(have.Key, t.Key) {
					return nil, errInternal(fmt.Sprintf("DB Exception on: INSERT INTO resource_tags: Duplicate entry '%d-Volume-%s' for key 'i_tags__resource_id__resource_type__key'", v.Seq, t.Key))
				}
			}
		}
	}
	for _, v := range vols {
		for _, t := range tags {
			v.Tags = append(v.Tags, t.Tag)
		}
	}
	return map[string]bool{"success": true}, nil
}

func deleteTags(c *call) (any, *apiError) {
	if _, err := c.require("resourcetype"); err != nil {
		return nil, err
	}
	if _, err := c.require("resourceids"); err != nil {
		return nil, err
	}
	if err := c.resourceTypeParam(); err != nil {
		return nil, err
	}
	return jobID{c.startJob("", "")}, nil
}

// completeDeleteTags removes the matching tags; keys and values compare
// ignoring case, a key without a value matches any value, no tags means all.
func completeDeleteTags(s *Simulator, j *Job) (any, *apiError) {
	want := parseTagParams(j.values())
	matches := func(t Tag) bool {
		if len(want) == 0 {
			return true
		}
		for _, w := range want {
			if strings.EqualFold(t.Key, w.Key) && (!w.hasValue || strings.EqualFold(t.Value, w.Value)) {
				return true
			}
		}
		return false
	}
	removed := 0
	kept := map[*Volume][]Tag{}
	for _, id := range resourceIDs(j.param("resourceids")) {
		v := s.volumes[id]
		if v == nil {
			continue
		}
		var keep []Tag
		for _, t := range v.Tags {
			if matches(t) {
				removed++
			} else {
				keep = append(keep, t)
			}
		}
		kept[v] = keep
	}
	if removed == 0 {
		return nil, errInvalid("Unable to find tags by parameters specified")
	}
	for v, keep := range kept {
		v.Tags = keep
	}
	return map[string]bool{"success": true}, nil
}

func listTags(c *call) (any, *apiError) {
	if rt := c.param("resourcetype"); rt != "" && !strings.EqualFold(rt, "Volume") {
		return c.page("tag", nil)
	}
	var items []any
	for _, snapshot := range c.s.sortedVolumesLocked() {
		v := c.s.volumes[snapshot.ID]
		if !c.canSee(v.Account) || (c.param("resourceid") != "" && v.ID != c.param("resourceid")) {
			continue
		}
		for _, t := range c.s.tagsJSON(v) {
			if (c.param("key") != "" && t.Key != c.param("key")) ||
				(c.param("value") != "" && t.Value != c.param("value")) ||
				!keywordMatch(c.param("keyword"), t.Key, t.Value) {
				continue
			}
			items = append(items, t)
		}
	}
	return c.page("tag", items)
}
