// Package search is a small inverted index over item titles and tags.
package search

import (
	"sort"
	"strings"
	"sync"
	"unicode"
)

// Index maps terms to the SKUs that contain them.
type Index struct {
	mu    sync.RWMutex
	terms map[string]map[string]int
}

// New is an empty index.
func New() *Index { return &Index{terms: map[string]map[string]int{}} }

// Terms splits text into lower-case words of two letters or more.
func Terms(text string) []string {
	f := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	out := f[:0]
	for _, t := range f {
		if len([]rune(t)) >= 2 {
			out = append(out, t)
		}
	}
	return out
}

// Add indexes a document.
func (ix *Index) Add(id string, texts ...string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, text := range texts {
		for _, t := range Terms(text) {
			m, ok := ix.terms[t]
			if !ok {
				m = map[string]int{}
				ix.terms[t] = m
			}
			m[id]++
		}
	}
}

// Hit is a matching document and its score.
type Hit struct {
	ID    string  `json:"id"`
	Score float64 `json:"score"`
}

// Query ranks documents by how many of the query's terms they hold, and how often.
func (ix *Index) Query(q string, limit int) []Hit {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	scores := map[string]float64{}
	for _, t := range Terms(q) {
		docs := ix.terms[t]
		if len(docs) == 0 {
			continue
		}
		idf := 1.0 / float64(len(docs))
		for id, n := range docs {
			scores[id] += 1 + idf*float64(n)
		}
	}
	hits := make([]Hit, 0, len(scores))
	for id, s := range scores {
		hits = append(hits, Hit{ID: id, Score: s})
	}
	sort.Slice(hits, func(a, b int) bool {
		if hits[a].Score != hits[b].Score {
			return hits[a].Score > hits[b].Score
		}
		return hits[a].ID < hits[b].ID
	})
	if len(hits) > limit {
		hits = hits[:limit]
	}
	return hits
}
