package querylimit

import "github.com/prometheus/client_golang/prometheus"

var (
	runningDesc = prometheus.NewDesc("sprout_query_running", "Queries running now, by store.", []string{"store"}, nil)
	waitingDesc = prometheus.NewDesc("sprout_query_waiting", "Queries waiting for a slot now, by store.", []string{"store"}, nil)
	refusedDesc = prometheus.NewDesc("sprout_query_refused_total", "Queries refused before they ran, by store and the limit that refused them.", []string{"store", "limit"}, nil)
)

// Collector reports the limiter's figures under the store's name.
func (l *Limiter) Collector(store string) prometheus.Collector { return &collector{l: l, store: store} }

type collector struct {
	l     *Limiter
	store string
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningDesc
	ch <- waitingDesc
	ch <- refusedDesc
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.l.mu.Lock()
	running, waiting := c.l.running, len(c.l.waiters)
	refused := make(map[string]uint64, len(c.l.refused))
	for k, v := range c.l.refused {
		refused[k] = v
	}
	c.l.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(running), c.store)
	ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(waiting), c.store)
	for limit, n := range refused {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(n), c.store, limit)
	}
}
