package querylimit

import "github.com/prometheus/client_golang/prometheus"

// Collector reports the limiter's figures with a `store` label, so that the three stores' limiters register
// side by side on one registry.
func (l *Limiter) Collector(store string) prometheus.Collector {
	cl := prometheus.Labels{"store": store}
	return &collector{l: l,
		running: prometheus.NewDesc("sprout_query_running", "Queries running now, by store.", nil, cl),
		waiting: prometheus.NewDesc("sprout_query_waiting", "Queries waiting for a slot now, by store.", nil, cl),
		refused: prometheus.NewDesc("sprout_query_refused_total", "Queries refused before they ran, by store and the limit that refused them.", []string{"limit"}, cl),
	}
}

type collector struct {
	l                         *Limiter
	running, waiting, refused *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.waiting
	ch <- c.refused
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.l.mu.Lock()
	running, waiting := c.l.running, len(c.l.waiters)
	refused := make(map[string]uint64, len(c.l.refused))
	for k, v := range c.l.refused {
		refused[k] = v
	}
	c.l.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(running))
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(waiting))
	for limit, n := range refused {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), limit)
	}
}
