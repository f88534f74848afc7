package watch

import "sync"

// queue is an unbounded FIFO with a wake-up signal. It sits between the
// fsnotify readers and the core loop, and between the core loop and the
// consumer, so that neither fsnotify (whose Events channel is unbuffered on
// Linux) nor the core loop ever waits for a slow consumer, and nothing is
// dropped. Its size is bounded in practice by the number of files watched.
type queue[T any] struct {
	mu    sync.Mutex
	items []T
	ready chan struct{} // holds one token while items is non-empty
}

func newQueue[T any]() *queue[T] { return &queue[T]{ready: make(chan struct{}, 1)} }

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take removes and returns everything queued.
func (q *queue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}
