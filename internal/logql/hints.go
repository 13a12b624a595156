package logql

import (
	"regexp/syntax"
	"text/template"
	"text/template/parse"

	"github.com/prometheus/prometheus/model/labels"
)

// Parser hints. Loki's metric queries tell their parsers which labels the query needs (the labels its stages
// read, its grouping, its unwrap label); a range aggregation that needs none — absent_over_time, or one
// grouped by nothing (`sum(count_over_time({…} | json [5m]))`) — runs no parser at all. A line that would
// fail to parse then fails nothing: the query is answered where a parse would have failed it with a pipeline
// error. Sprout skips the parsers in the same cases so that the same queries succeed and fail.

// metricStages returns the stages a range aggregation runs, as Loki's engine runs them: a line_format whose
// line nothing reads afterwards (no parser or line filter after it, and the aggregation does not count bytes)
// is dropped, as Loki's query optimiser does (with it, the errors of its template); then, when the
// aggregation needs no extracted label, its parsers are dropped (Loki's parser hints).
func metricStages(ra *RangeAggregation, stages []Stage) []Stage {
	if ra.Op != "bytes_over_time" && ra.Op != "bytes_rate" {
		stages = withoutIdleLineFormat(stages)
	}
	if skipsParsers(ra, stages) {
		stages = withoutParsers(stages)
	}
	return stages
}

// withoutIdleLineFormat drops every line_format not followed by a parser or a line filter.
func withoutIdleLineFormat(stages []Stage) []Stage {
	var out []Stage
	for i, st := range stages {
		if _, ok := st.(*LineFormatStage); ok && !lineReadAfter(stages[i+1:]) {
			if out == nil {
				out = append(make([]Stage, 0, len(stages)), stages[:i]...)
			}
			continue
		}
		if out != nil {
			out = append(out, st)
		}
	}
	if out == nil {
		return stages
	}
	return out
}

func lineReadAfter(stages []Stage) bool {
	for _, st := range stages {
		switch st.(type) {
		case *ParserStage, *LineFilter:
			return true
		}
	}
	return false
}

// skipsParsers reports whether ra, evaluated with its own grouping (or the one a sum pushed into it) and
// stages, needs no label a parser extracts.
func skipsParsers(ra *RangeAggregation, stages []Stage) bool {
	if ra.Unwrap != nil {
		return false // the unwrapped label is needed
	}
	noLabels := ra.Op == "absent_over_time" ||
		(ra.Grouping != nil && !ra.Grouping.Without && len(ra.Grouping.Names) == 0)
	return noLabels && !stagesReadLabels(stages)
}

// withoutParsers returns stages without their parser stages.
func withoutParsers(stages []Stage) []Stage {
	out := make([]Stage, 0, len(stages))
	for _, st := range stages {
		if _, ok := st.(*ParserStage); !ok {
			out = append(out, st)
		}
	}
	return out
}

// stagesReadLabels reports whether a stage reads a label by name: a label filter, a line_format or
// label_format template with a field, a label_format rename. (drop and keep name labels but need none.)
func stagesReadLabels(stages []Stage) bool {
	for _, st := range stages {
		switch s := st.(type) {
		case *LabelFilterStage:
			if filterReadsLabel(s.Filter) {
				return true
			}
		case *LineFormatStage:
			if templateHasField(s.tmpl) {
				return true
			}
		case *LabelFormatStage:
			for _, it := range s.Items {
				if it.Rename || templateHasField(it.tmpl) {
					return true
				}
			}
		}
	}
	return false
}

func filterReadsLabel(f LabelFilter) bool {
	switch x := f.(type) {
	case *BinaryLabelFilter:
		return filterReadsLabel(x.Left) || filterReadsLabel(x.Right)
	case *StringLabelFilter:
		// Loki turns a label regex that matches anything (`x=~".*"`, `x=~""`) into a filter that reads nothing.
		return x.M.Type != labels.MatchRegexp || !regexAlwaysTrue(x.M.Value)
	case *NumericLabelFilter, *IPLabelFilter:
		return true
	}
	return false
}

// regexAlwaysTrue reports a regular expression Loki's simplifier replaces with "true": `.*` or the empty
// match, in a capture group or not.
func regexAlwaysTrue(re string) bool {
	r, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return false
	}
	r = r.Simplify()
	for r.Op == syntax.OpCapture && len(r.Sub) == 1 {
		r = r.Sub[0]
	}
	return r.Op == syntax.OpEmptyMatch || (r.Op == syntax.OpStar && len(r.Sub) == 1 && r.Sub[0].Op == syntax.OpAnyCharNotNL)
}

// templateHasField reports whether a template refers to a field ({{.name}}) anywhere, in actions, pipes,
// commands and the branches of if, with and range.
func templateHasField(t *template.Template) bool {
	if t == nil || t.Tree == nil {
		return false
	}
	return nodeHasField(t.Tree.Root)
}

func nodeHasField(n parse.Node) bool {
	switch x := n.(type) {
	case nil:
		return false
	case *parse.FieldNode:
		return true
	case *parse.ListNode:
		if x == nil {
			return false
		}
		for _, c := range x.Nodes {
			if nodeHasField(c) {
				return true
			}
		}
	case *parse.ActionNode:
		return nodeHasField(x.Pipe)
	case *parse.PipeNode:
		if x == nil {
			return false
		}
		for _, c := range x.Cmds {
			if nodeHasField(c) {
				return true
			}
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			if nodeHasField(a) {
				return true
			}
		}
	case *parse.IfNode:
		return branchHasField(&x.BranchNode)
	case *parse.WithNode:
		return branchHasField(&x.BranchNode)
	case *parse.RangeNode:
		return branchHasField(&x.BranchNode)
	}
	return false
}

func branchHasField(b *parse.BranchNode) bool {
	return nodeHasField(b.Pipe) || nodeHasField(b.List) || nodeHasField(b.ElseList)
}
