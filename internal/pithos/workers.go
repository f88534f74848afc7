package pithos

import (
	"context"
	"sync"
)

// runWorkers runs n copies of fn and waits for all of them. The first error
// cancels the context the others see, so a failed read or a refused block
// stops the whole stage promptly; that first error is the one returned, so
// the cause is reported rather than a sibling's context.Canceled.
func runWorkers(ctx context.Context, n int, fn func(ctx context.Context) error) error {
	fns := make([]func(context.Context) error, max(n, 1))
	for i := range fns {
		fns[i] = fn
	}
	return runAll(ctx, fns...)
}

// runAll is runWorkers for different functions: the stages of a pipeline.
func runAll(ctx context.Context, fns ...func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				once.Do(func() {
					first = err
					cancel()
				})
			}
		}()
	}
	wg.Wait()
	return first
}
