package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultCacheSize bounds the verified tokens a verifier remembers.
const DefaultCacheSize = 4096

// tokenCache remembers verified tokens until a deadline (at most their
// expiry), keyed by a digest of token and audience so that it holds no
// usable credential. It holds at most size entries: a full cache first
// drops what has expired, then an arbitrary entry.
type tokenCache struct {
	size int

	mu      sync.Mutex
	entries map[[sha256.Size]byte]cached
}

type cached struct {
	id    Identity
	until time.Time
}

func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &tokenCache{size: size, entries: make(map[[sha256.Size]byte]cached)}
}

// keyBufs holds the buffers cacheKey hashes, so that a cache hit does not
// allocate.
var keyBufs = sync.Pool{New: func() any { return new([]byte) }}

func cacheKey(token, audience string) [sha256.Size]byte {
	bp := keyBufs.Get().(*[]byte)
	b := append(append(append((*bp)[:0], audience...), 0), token...)
	k := sha256.Sum256(b)
	*bp = b
	keyBufs.Put(bp)
	return k
}

// get returns the identity remembered for key if its deadline is after now.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (Identity, bool) {
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && !now.Before(e.until) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	return e.id, ok
}

// put remembers id for key until until.
func (c *tokenCache) put(key [sha256.Size]byte, id Identity, until, now time.Time) {
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.size {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cached{id: id, until: until}
}

// len is the number of entries, expired ones included.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
