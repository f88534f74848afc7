package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/imagesync/imagesync/internal/watch"
)

// A job that reads local files must run on the node that has them (see the
// queue table in tasks.go). Tasks say whose files they read (ImageRef.Node)
// and are queued where that node takes them, so route normally lets them
// run. It steps in for the tasks that are not where they belong:
//
//   - A task naming another node (moved by hand, or a node renamed while its
//     tasks waited) is forwarded to that node's queue.
//   - A task that names no node although its root is not shared here was
//     queued on default by a syncd older than issue 11, which did not say
//     which node had the file. Its node is found by asking them all: the
//     task is copied, under the same id, to the queue of every node known
//     to this Redis (those that ever ran, including the ones down now), and
//     each copy runs only on the node that has the very file the task was
//     made for (same remote object, same size, mtime, device and inode) and
//     is dropped elsewhere. If no node has it any more, the file changed or
//     went, and its newer version has work of its own.

// routeOutcome says what route decided.
type routeOutcome int

const (
	runHere   routeOutcome = iota // the task belongs here
	forwarded                     // copied to the queue(s) it belongs to; nothing more to do here
	notMine                       // a legacy copy for a file this node does not have
)

// route decides whether the task t, which reads the local files of ref,
// runs on this node. owns reports whether this node has the file a legacy
// task was made for (and if not, why).
func (w *Worker) route(ctx context.Context, t *asynq.Task, ref ImageRef, pw *progressWriter, owns func() (bool, string)) (routeOutcome, error) {
	me := w.d.Catalog.Node()
	switch {
	case ref.Node == me:
		return runHere, nil
	case ref.Node != "":
		return forwarded, w.forward(ctx, t, pw, []string{NodeQueue(ref.Node)}, "the task belongs to node "+ref.Node)
	case ref.Shared:
		if _, err := w.d.Catalog.Root(ref.Root); err != nil {
			return forwarded, permanent(fmt.Errorf("shared watch root %s is not configured on node %s: any node may run the jobs of a shared root, so configure it (with shared: true) on every node, then `syncctl retry` this task", ref.Root, me))
		}
		return runHere, nil
	}
	// No node and not marked shared: queued by an older syncd.
	if root, err := w.d.Catalog.Root(ref.Root); err == nil && root.Shared {
		return runHere, nil
	}
	if queue, _ := asynq.GetQueueName(ctx); queue != NodeQueue(me) {
		nodes, err := w.knownNodes(ctx)
		if err != nil {
			return forwarded, fmt.Errorf("finding the node that has %s: %w", ref.RelPath, err)
		}
		queues := make([]string, len(nodes))
		for i, n := range nodes {
			queues[i] = NodeQueue(n)
		}
		return forwarded, w.forward(ctx, t, pw, queues, "queued by an older syncd that did not say which node has the file: asking every node")
	}
	if ok, why := owns(); !ok {
		Logger(ctx, w.d.Log).Info("task of an older syncd: not this node's file; the node that has it runs its copy",
			zap.String("path", ref.RelPath), zap.String("why", why))
		pw.update(true, func(pr *Progress) { pr.Phase, pr.Note = PhaseDone, "not this node's file: "+why })
		return notMine, nil
	}
	return runHere, nil
}

// knownNodes are the nodes to ask about a legacy task: every node this
// Redis has seen (Deps.Nodes), and this one.
func (w *Worker) knownNodes(ctx context.Context) ([]string, error) {
	nodes := []string{w.d.Catalog.Node()}
	if w.d.Nodes != nil {
		more, err := w.d.Nodes(ctx)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, more...)
	}
	slices.Sort(nodes)
	return slices.Compact(nodes), nil
}

// forward copies t, under its id, to each of queues. A copy already there
// (a repeated forward) is left alone.
func (w *Worker) forward(ctx context.Context, t *asynq.Task, pw *progressWriter, queues []string, why string) error {
	id, _ := asynq.GetTaskID(ctx)
	log := Logger(ctx, w.d.Log)
	for _, q := range queues {
		out, err := w.d.Enqueuer.Enqueue(ctx, Request{Type: t.Type(), ID: id, Queue: q, Payload: json.RawMessage(t.Payload()), Opts: taskOptions(t.Type())})
		if err != nil {
			return fmt.Errorf("forwarding %s to %s: %w", id, q, err)
		}
		log.Info("task forwarded", zap.String("to", q), zap.String("outcome", string(out)), zap.String("why", why))
	}
	pw.update(true, func(pr *Progress) {
		pr.Phase, pr.Note = PhaseDone, fmt.Sprintf("forwarded to %s: %s", strings.Join(queues, ", "), why)
	})
	return nil
}

// sameObject reports whether this node maps ref's file to ref's object: a
// node that uploads it elsewhere is not the one the task was made on.
func (w *Worker) sameObject(ref ImageRef) (bool, string) {
	mine, err := w.d.Catalog.Ref(ref.Root, ref.RelPath)
	if err != nil {
		return false, err.Error()
	}
	if mine.Container != ref.Container || mine.Object != ref.Object {
		return false, fmt.Sprintf("this node uploads %s to %s, not %s", ref.RelPath, mine.Location(), ref.Location())
	}
	return true, ""
}

// hasFile reports whether this node has the file a registration was made
// for: the same object, and a file of the same identity.
func (w *Worker) hasFile(p RegisterPayload) (bool, string) {
	if ok, why := w.sameObject(p.ImageRef); !ok {
		return false, why
	}
	abs := filepath.Join(p.Root, filepath.FromSlash(p.RelPath))
	info, err := os.Stat(abs)
	if err != nil {
		return false, err.Error()
	}
	id := watch.IDOf(info)
	if got := fileFingerprint(FileFacts{Size: info.Size(), ModTime: info.ModTime(), Dev: id.Dev, Inode: id.Ino}); got != p.File {
		return false, fmt.Sprintf("%s here is another file (%s, the task's is %s)", abs, got, p.File)
	}
	return true, ""
}

// mayUnregister reports whether this node is one that could have queued an
// unregistration of ref: it maps the file to the same object and
// unregisters the images of removed files in that root.
func (w *Worker) mayUnregister(ref ImageRef) (bool, string) {
	if ok, why := w.sameObject(ref); !ok {
		return false, why
	}
	if root, _ := w.d.Catalog.Root(ref.Root); !root.UnregisterDeleted {
		return false, "unregister_deleted is off for " + ref.Root + " on this node"
	}
	return true, ""
}
