package tracestore

import (
	"container/list"
	"sync"
)

// rangeCache keeps recently read byte ranges of block files in memory, so that repeated reads of the same
// parquet pages (trace by id of traces in one page, searches over the same columns, the footer and page index
// read when a block is opened again) do not go back to an object store. It is used for buckets other than the
// local filesystem, where the OS page cache does the same. Least recently used ranges go first.
type rangeCache struct {
	mu     sync.Mutex
	budget int64
	used   int64
	lru    *list.List // of *cacheEntry, most recent at the front
	byKey  map[cacheKey]*list.Element
	hits   int64
	misses int64
}

type cacheKey struct {
	name string
	off  int64
	n    int
}

type cacheEntry struct {
	key  cacheKey
	data []byte
}

func newRangeCache(budget int64) *rangeCache {
	if budget <= 0 {
		return nil
	}
	return &rangeCache{budget: budget, lru: list.New(), byKey: map[cacheKey]*list.Element{}}
}

// get copies a cached range into p.
func (c *rangeCache) get(name string, off int64, p []byte) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[cacheKey{name, off, len(p)}]
	if !ok {
		c.misses++
		return false
	}
	c.hits++
	c.lru.MoveToFront(e)
	copy(p, e.Value.(*cacheEntry).data)
	return true
}

// put remembers a range (a copy of data); a range larger than a quarter of the budget is not kept.
func (c *rangeCache) put(name string, off int64, data []byte) {
	if c == nil || int64(len(data)) > c.budget/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey{name, off, len(data)}
	if _, ok := c.byKey[k]; ok {
		return
	}
	c.byKey[k] = c.lru.PushFront(&cacheEntry{key: k, data: append([]byte(nil), data...)})
	c.used += int64(len(data))
	for c.used > c.budget {
		last := c.lru.Back()
		ent := last.Value.(*cacheEntry)
		c.lru.Remove(last)
		delete(c.byKey, ent.key)
		c.used -= int64(len(ent.data))
	}
}

// drop forgets every range of an object (a deleted block).
func (c *rangeCache) drop(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.byKey {
		if k.name == name {
			c.lru.Remove(e)
			delete(c.byKey, k)
			c.used -= int64(len(e.Value.(*cacheEntry).data))
		}
	}
}
