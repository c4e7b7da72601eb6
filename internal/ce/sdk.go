package ce

import (
	"errors"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// SDKEvent converts a stored message (headers and data) into a CloudEvents
// SDK event, for the CESQL evaluator and for display. Values are decoded as
// FromStored decodes them, header keys in any case; a time that does not
// parse is left out.
func SDKEvent(h map[string][]string, data []byte) (event.Event, error) {
	sv := ""
	for k, vs := range h {
		if len(vs) > 0 && IsKey(k) && AttrName(k) == AttrSpecVersion {
			sv = Decode(vs[0])
		}
	}
	if sv == "" {
		return event.Event{}, errors.New("no CloudEvent: the message has no ce-specversion header")
	}
	e := event.New(sv)
	for k, vs := range h {
		if !IsKey(k) || len(vs) == 0 {
			continue
		}
		name, val := AttrName(k), Decode(vs[0])
		switch name {
		case AttrSpecVersion, AttrDataEncoding:
		case AttrID:
			e.SetID(val)
		case AttrSource:
			e.SetSource(val)
		case AttrType:
			e.SetType(val)
		case AttrSubject:
			e.SetSubject(val)
		case AttrDataSchema, AttrSchemaURL:
			e.SetDataSchema(val)
		case AttrTime:
			if t, err := types.ParseTime(val); err == nil {
				e.SetTime(t)
			}
		default:
			e.SetExtension(name, val)
		}
	}
	if ct, ok := StoredAttr(h, AttrDataContentType); ok {
		e.SetDataContentType(ct)
	}
	if len(data) > 0 {
		e.DataEncoded = data
	}
	return e, nil
}
