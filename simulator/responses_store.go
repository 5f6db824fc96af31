package simulator

import "sync"

// maxStoredResponses bounds the memory held for stored responses: past it
// the oldest is forgotten, as if it had expired.
const maxStoredResponses = 1024

// storedMeta is what continuing a conversation needs beyond the object.
type storedMeta struct {
	turn    int // turns in the conversation up to and including this response
	context int // tokens the conversation so far adds to the next turn's input
}

type storedResponse struct {
	obj responseObject
	storedMeta
}

// responseStore keeps stored responses in memory, oldest dropped first.
// Like xAI it does not isolate them by key: whoever has the id may read,
// continue or delete.
type responseStore struct {
	mu    sync.Mutex
	byID  map[string]storedResponse
	order []string // insertion order; ids may already be deleted
	limit int
}

func newResponseStore(limit int) *responseStore {
	return &responseStore{byID: make(map[string]storedResponse), limit: limit}
}

func (st *responseStore) put(r storedResponse) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byID[r.obj.ID] = r
	st.order = append(st.order, r.obj.ID)
	for len(st.byID) > st.limit {
		delete(st.byID, st.order[0])
		st.order = st.order[1:]
	}
	// Deleted ids linger in order; compact once they dominate it.
	if len(st.order) > 2*st.limit {
		live := st.order[:0]
		for _, id := range st.order {
			if _, ok := st.byID[id]; ok {
				live = append(live, id)
			}
		}
		st.order = live
	}
}

func (st *responseStore) get(id string) (storedResponse, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.byID[id]
	return r, ok
}

// remove forgets id and reports whether it was there.
func (st *responseStore) remove(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.byID[id]
	delete(st.byID, id)
	return ok
}
