package logstore

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The pattern miner groups log lines by shape, as Loki's pattern ingester does for Logs Drilldown's Patterns tab:
// one pattern per shape, the parts that vary replaced by <_>, with the number of lines per step. It is a Drain
// log-template miner (He et al., ICWS 2017) run over the lines of one query, not kept across queries:
//
//   - a line is cut into tokens at spaces and punctuation ('_', '-', '.', ':' and '/' stay inside a token, '='
//     is a token of its own); a token holding a digit is a variable from the start;
//   - lines of the same level, token count and first token are candidates for the same pattern; the line joins
//     the candidate whose tokens agree most, when at least a third of its positions agree (Loki's 0.3);
//   - a pattern's positions where its lines disagree become <_>; adjacent <_> are shown as one.
//
// Its memory is bounded: at most maxPatterns patterns (later lines of new shapes are counted as dropped), lines
// longer than patternMaxLineLength or with fewer than patternMinTokens or more than patternMaxTokens tokens are
// skipped (as Loki skips them), and the counts per step are one slice per pattern.

const (
	// patternPlaceholder marks a variable part of a pattern (Loki's).
	patternPlaceholder = "<_>"
	// patternSimilarity is the share of agreeing tokens a line needs to join a pattern.
	patternSimilarity = 0.3
	// defaultMaxPatterns bounds the patterns of one query (Loki's pattern ingester keeps 300 per stream).
	defaultMaxPatterns = 300
	// patternMaxLineLength, patternMinTokens and patternMaxTokens are the lines Loki's miner accepts.
	patternMaxLineLength = 3000
	patternMinTokens     = 4
	patternMaxTokens     = 80
	// patternMaxCandidates bounds the patterns one line is compared with (Drain's max children).
	patternMaxCandidates = 100
)

// patternCluster is one pattern: its tokens, where spaces follow them, and its lines per step.
type patternCluster struct {
	level  string
	tokens []string
	space  []bool // space[i]: a space follows tokens[i]
	counts []int64
	total  int64
}

func (c *patternCluster) String() string {
	var sb strings.Builder
	prevPlaceholder := false
	for i, t := range c.tokens {
		// Adjacent placeholders (no space between them) read as one, as Loki shows them.
		if t == patternPlaceholder && prevPlaceholder {
			if c.space[i] {
				sb.WriteByte(' ')
			}
			prevPlaceholder = !c.space[i]
			continue
		}
		sb.WriteString(t)
		prevPlaceholder = t == patternPlaceholder && !c.space[i]
		if c.space[i] {
			sb.WriteByte(' ')
		}
	}
	return strings.TrimRight(sb.String(), " ")
}

// patternMiner mines the patterns of lines over [start, start+steps*step).
type patternMiner struct {
	start, step int64
	steps       int
	maxPatterns int
	clusters    []*patternCluster
	// byPrefix holds the candidates of a line: the patterns of one level, token count and first token.
	byPrefix map[string][]*patternCluster
	tokens   []string
	space    []bool
	// Skipped lines (too long, too few or too many tokens) and lines dropped because maxPatterns was reached.
	Skipped, Dropped int64
}

func newPatternMiner(start, step int64, steps, maxPatterns int) *patternMiner {
	if maxPatterns <= 0 {
		maxPatterns = defaultMaxPatterns
	}
	return &patternMiner{start: start, step: step, steps: steps, maxPatterns: maxPatterns, byPrefix: map[string][]*patternCluster{}}
}

// tokenizeLine cuts a line into tokens and records which are followed by a space; tokens with a digit become
// placeholders. It returns false for a line the miner skips.
func (m *patternMiner) tokenizeLine(line string) bool {
	if len(line) > patternMaxLineLength {
		return false
	}
	m.tokens, m.space = m.tokens[:0], m.space[:0]
	start := 0
	emit := func(end int) {
		if end > start {
			m.tokens = append(m.tokens, line[start:end])
			m.space = append(m.space, false)
		}
	}
	for i := 0; i < len(line); {
		r, w := utf8.DecodeRuneInString(line[i:])
		i += w
		if unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' || r == '-' || r == '.' || r == ':' || r == '/' {
			continue
		}
		at := i - w // the rune's offset
		if unicode.IsSpace(r) {
			// Tabs and other blanks separate like a space.
			emit(at)
			if len(m.space) > 0 {
				m.space[len(m.space)-1] = true
			}
			start = i
			continue
		}
		if r == '=' || unicode.IsPunct(r) || unicode.IsSymbol(r) || r == utf8.RuneError {
			emit(at)
			m.tokens = append(m.tokens, line[at:i])
			m.space = append(m.space, false)
			start = i
		}
		if len(m.tokens) > patternMaxTokens {
			return false
		}
	}
	emit(len(line))
	if len(m.tokens) < patternMinTokens || len(m.tokens) > patternMaxTokens {
		return false
	}
	for i, t := range m.tokens {
		if strings.ContainsFunc(t, unicode.IsDigit) {
			m.tokens[i] = patternPlaceholder
		}
	}
	return true
}

// Add mines one line of the given level at ts (ns).
func (m *patternMiner) Add(ts int64, level, line string) {
	if !m.tokenizeLine(line) {
		m.Skipped++
		return
	}
	first := m.tokens[0]
	key := level + "\xff" + string(rune(len(m.tokens))) + "\xff" + first
	cands := m.byPrefix[key]
	var best *patternCluster
	bestSim, bestParams := -1.0, -1
	for _, c := range cands {
		same, params := 0, 0
		for i, t := range c.tokens {
			switch {
			case t == patternPlaceholder:
				params++
			case t == m.tokens[i]:
				same++
			}
		}
		sim := float64(same) / float64(len(c.tokens))
		if sim > bestSim || sim == bestSim && params > bestParams {
			best, bestSim, bestParams = c, sim, params
		}
	}
	if best == nil || bestSim < patternSimilarity {
		if len(m.clusters) >= m.maxPatterns || len(m.byPrefix[key]) >= patternMaxCandidates {
			m.Dropped++
			return
		}
		best = &patternCluster{level: level, tokens: append([]string(nil), m.tokens...), space: append([]bool(nil), m.space...)}
		m.clusters = append(m.clusters, best)
		m.byPrefix[key] = append(m.byPrefix[key], best)
	} else {
		for i, t := range best.tokens {
			if t != m.tokens[i] {
				best.tokens[i] = patternPlaceholder
			}
		}
	}
	best.total++
	if m.step > 0 {
		i := int((ts - m.start) / m.step)
		if i >= 0 && i < m.steps {
			if best.counts == nil {
				best.counts = make([]int64, m.steps)
			}
			best.counts[i]++
		}
	}
}

// minedPattern is one pattern of the answer.
type minedPattern struct {
	Pattern string
	Level   string
	Total   int64
	// Samples are [unix seconds, lines] of the steps with lines, in time order.
	Samples [][2]int64
}

// Patterns returns the patterns, the most frequent first. Patterns that render alike (two clusters whose
// placeholders merged them into one shape) are summed.
func (m *patternMiner) Patterns() []minedPattern {
	byKey := map[string]*minedPattern{}
	var counts = map[string][]int64{}
	var order []string
	for _, c := range m.clusters {
		p := c.String()
		k := c.level + "\xff" + p
		mp := byKey[k]
		if mp == nil {
			mp = &minedPattern{Pattern: p, Level: c.level}
			byKey[k] = mp
			order = append(order, k)
			counts[k] = make([]int64, m.steps)
		}
		mp.Total += c.total
		for i, n := range c.counts {
			counts[k][i] += n
		}
	}
	out := make([]minedPattern, 0, len(order))
	for _, k := range order {
		mp := byKey[k]
		for i, n := range counts[k] {
			if n > 0 {
				mp.Samples = append(mp.Samples, [2]int64{(m.start + int64(i)*m.step) / 1e9, n})
			}
		}
		out = append(out, *mp)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		if out[i].Pattern != out[j].Pattern {
			return out[i].Pattern < out[j].Pattern
		}
		return out[i].Level < out[j].Level
	})
	return out
}
