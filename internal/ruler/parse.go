package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// promqlParser is shared: it holds only options.
var promqlParser = parser.NewParser(parser.Options{})

// ParseRuleFile parses a Prometheus rule file and keeps what can run: a group whose rules fail validation is
// dropped with an error naming the source, the group and the line, and the file's other groups are kept. A
// file that is not valid YAML, or that has a file-level problem (a repeated or empty group name), yields no
// groups. The returned groups are never nil.
func ParseRuleFile(source string, content []byte, logger *slog.Logger) (*rulefmt.RuleGroups, []error) {
	return ParseRuleFileLang(PromQL, source, content, logger)
}

// ParseRuleFileLang is ParseRuleFile for rule files in the given language: for LogQL, every expression must be
// a LogQL metric query, and an invalid one is reported with its position in the query.
func ParseRuleFileLang(lang Lang, source string, content []byte, logger *slog.Logger) (*rulefmt.RuleGroups, []error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rgs, errs := rulefmt.Parse(content, false, model.UTF8Validation, parserFor(lang), logger)
	if rgs == nil {
		return &rulefmt.RuleGroups{}, prefix(source, errs)
	}
	if len(errs) == 0 {
		return rgs, nil
	}
	bad := map[string]bool{}
	for _, err := range errs {
		var re *rulefmt.Error
		if !errors.As(err, &re) {
			// Not attributable to one group: nothing in this file can be trusted to be what was meant.
			return &rulefmt.RuleGroups{}, prefix(source, errs)
		}
		bad[re.Group] = true
	}
	kept := &rulefmt.RuleGroups{}
	for _, g := range rgs.Groups {
		if !bad[g.Name] {
			kept.Groups = append(kept.Groups, g)
		}
	}
	return kept, prefix(source, errs)
}

// prefix names the source in each error and drops repeats (the YAML decoder can report one problem twice).
func prefix(source string, errs []error) []error {
	out := make([]error, 0, len(errs))
	seen := map[string]bool{}
	for _, err := range errs {
		if seen[err.Error()] {
			continue
		}
		seen[err.Error()] = true
		out = append(out, fmt.Errorf("rule file %s: %w", source, err))
	}
	return out
}

// ParseGroup parses and validates one rule group in YAML, the body of a ruler API upload.
func ParseGroup(content []byte) (rulefmt.RuleGroup, error) { return ParseGroupLang(PromQL, content) }

// ParseGroupLang is ParseGroup for a group in the given language.
func ParseGroupLang(lang Lang, content []byte) (rulefmt.RuleGroup, error) {
	var g rulefmt.RuleGroup
	dec := yaml.NewDecoder(bytes.NewReader(content))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		return g, fmt.Errorf("decode rule group: %w", err)
	}
	if g.Name == "" {
		return g, errors.New("invalid rule group: name must not be empty")
	}
	// Validate through the file parser, which knows line numbers and checks every expression and template.
	doc, err := yaml.Marshal(rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{g}})
	if err != nil {
		return g, fmt.Errorf("encode rule group: %w", err)
	}
	if _, errs := rulefmt.Parse(doc, false, model.UTF8Validation, parserFor(lang), slog.New(slog.DiscardHandler)); len(errs) > 0 {
		return g, fmt.Errorf("invalid rule group %q: %w", g.Name, errors.Join(errs...))
	}
	return g, nil
}
