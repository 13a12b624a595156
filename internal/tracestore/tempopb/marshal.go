package tempopb

// Marshal and Unmarshal make each message a grpcwire.Message.

// Marshal encodes m in protobuf's wire format.
func (m *SearchRequest) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchRequest) Unmarshal(b []byte) error {
	*m = SearchRequest{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchResponse) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchResponse) Unmarshal(b []byte) error {
	*m = SearchResponse{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *TraceSearchMetadata) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *TraceSearchMetadata) Unmarshal(b []byte) error {
	*m = TraceSearchMetadata{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *ServiceStats) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *ServiceStats) Unmarshal(b []byte) error {
	*m = ServiceStats{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SpanSet) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SpanSet) Unmarshal(b []byte) error {
	*m = SpanSet{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *Span) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *Span) Unmarshal(b []byte) error {
	*m = Span{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchMetrics) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchMetrics) Unmarshal(b []byte) error {
	*m = SearchMetrics{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchTagsRequest) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchTagsRequest) Unmarshal(b []byte) error {
	*m = SearchTagsRequest{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *MetadataMetrics) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *MetadataMetrics) Unmarshal(b []byte) error {
	*m = MetadataMetrics{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchTagsResponse) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchTagsResponse) Unmarshal(b []byte) error {
	*m = SearchTagsResponse{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchTagsV2Scope) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchTagsV2Scope) Unmarshal(b []byte) error {
	*m = SearchTagsV2Scope{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchTagsV2Response) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchTagsV2Response) Unmarshal(b []byte) error {
	*m = SearchTagsV2Response{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchTagValuesRequest) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchTagValuesRequest) Unmarshal(b []byte) error {
	*m = SearchTagValuesRequest{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchTagValuesResponse) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchTagValuesResponse) Unmarshal(b []byte) error {
	*m = SearchTagValuesResponse{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *TagValue) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *TagValue) Unmarshal(b []byte) error {
	*m = TagValue{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *SearchTagValuesV2Response) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *SearchTagValuesV2Response) Unmarshal(b []byte) error {
	*m = SearchTagValuesV2Response{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *QueryRangeRequest) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *QueryRangeRequest) Unmarshal(b []byte) error {
	*m = QueryRangeRequest{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *QueryRangeResponse) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *QueryRangeResponse) Unmarshal(b []byte) error {
	*m = QueryRangeResponse{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *TimeSeries) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *TimeSeries) Unmarshal(b []byte) error {
	*m = TimeSeries{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *Sample) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *Sample) Unmarshal(b []byte) error {
	*m = Sample{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *Exemplar) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *Exemplar) Unmarshal(b []byte) error {
	*m = Exemplar{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *QueryInstantRequest) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *QueryInstantRequest) Unmarshal(b []byte) error {
	*m = QueryInstantRequest{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *QueryInstantResponse) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *QueryInstantResponse) Unmarshal(b []byte) error {
	*m = QueryInstantResponse{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *InstantSeries) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *InstantSeries) Unmarshal(b []byte) error {
	*m = InstantSeries{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *AnyValue) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *AnyValue) Unmarshal(b []byte) error {
	*m = AnyValue{}
	return m.unmarshal(b, 0)
}

// Marshal encodes m in protobuf's wire format.
func (m *KeyValue) Marshal() ([]byte, error) { return m.appendTo(nil), nil }

// Unmarshal decodes b into m, replacing what m held.
func (m *KeyValue) Unmarshal(b []byte) error {
	*m = KeyValue{}
	return m.unmarshal(b, 0)
}
