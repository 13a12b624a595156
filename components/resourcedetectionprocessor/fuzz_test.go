package resourcedetectionprocessor

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// FuzzParseEnvAttributes: any OTEL_RESOURCE_ATTRIBUTES either parses into keys of at most 256 characters or is
// an error; it never panics.
func FuzzParseEnvAttributes(f *testing.F) {
	for _, s := range []string{"a=b", " k = v ,x=y,", "k=%2C", "=", "a=b,,c", "k=%zz", "k=é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := pcommon.NewMap()
		if err := parseEnvAttributes(s, m); err != nil {
			return
		}
		for k := range m.All() {
			if k == "" || len(k) > 256 {
				t.Fatalf("key %q accepted from %q", k, s)
			}
		}
	})
}

// FuzzECSResource: any pair of metadata answers gives attributes or an error, never a panic, and the log
// attribute lists stay the same length.
func FuzzECSResource(f *testing.F) {
	f.Add(readTestdata(f, "task.json"), readTestdata(f, "container.json"))
	f.Add([]byte(`{"Cluster":"c","TaskARN":"a:b:c:d:e:task/x"}`), []byte(`{}`))
	f.Add([]byte(`{"Containers":[{"Type":"NORMAL","KnownStatus":"RUNNING","LogDriver":"awslogs","LogOptions":{"awslogs-group":"g"}}]}`), []byte(`null`))
	f.Fuzz(func(t *testing.T, task, self []byte) {
		res, err := ecsResource(task, self)
		if err != nil {
			return
		}
		a := res.Attributes()
		n := -1
		for _, k := range []string{"aws.log.group.names", "aws.log.group.arns", "aws.log.stream.names", "aws.log.stream.arns"} {
			v, ok := a.Get(k)
			l := 0
			if ok {
				l = v.Slice().Len()
			}
			if n >= 0 && l != n {
				t.Fatalf("%s has %d entries, the others %d", k, l, n)
			}
			n = l
		}
	})
}
