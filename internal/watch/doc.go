// Package watch finds disk images under the configured watch roots and
// reports them once they are complete. It knows nothing of Pithos or job
// queues: it turns a changing local directory tree into Events.
//
// How it works:
//
//   - Each root gets its own fsnotify watcher with one watch per directory
//     (fsnotify is not recursive). New directories are watched and scanned as
//     soon as they appear, since files created before the watch existed raise
//     no event. Directories that vanish are unwatched, and their images are
//     reported removed.
//   - A goroutine per root drains fsnotify into an unbounded queue, so the
//     kernel queue is emptied even while the core is busy scanning; a single
//     core goroutine owns all state; another unbounded queue feeds the
//     Events channel, so a slow consumer delays delivery but never loses an
//     event and never stalls fsnotify.
//   - Settling: a file is reported only after its (size, mtime, dev, inode)
//     stayed the same for Settle, and after it could be opened for reading.
//     fsnotify has no portable close-write event and a file moved in raises
//     only Create, so stability is the only reliable signal. One timer and a
//     min-heap of due checks serve the whole tree (no goroutine per file).
//   - A file that changes after its report is reported again once it settles
//     again. A reported file that goes away yields ImageRemoved (or
//     MetaChanged with Removed); one never reported is forgotten silently.
//   - A full rescan runs at start, every Rescan, and at once after the kernel
//     reports an event-queue overflow. A rescan of unchanged files costs a
//     directory listing and a stat per candidate file, plus per directory a
//     stat and a re-add of its watch (a no-op for a healthy watch; it heals
//     watches lost with the events of an overflow). It reports nothing for
//     files already reported. ForceRescan with emitAll re-reports everything,
//     so the daemon can re-derive its jobs from the whole tree.
//   - Watches follow inodes, and fsnotify names events after the path a
//     watch was added with, so a directory found at a new path (moved) has
//     the watch under its old path dropped before it is watched again.
//   - Everything found by the first scan is new, so it is reported once it
//     settles: ImageReady for each image and MetaChanged for each metafile.
//     Task ids downstream are deterministic, so this is idempotent.
//   - If inotify limits are hit (ENOSPC from max_user_watches, EMFILE from
//     max_user_instances), that root falls back to polling every Poll with a
//     warning and an Error event wrapping ErrWatchLimit. Roots on network
//     filesystems can be set to Poll from the start.
//
// The rules (what is an image or a metafile, which links are taken, what a
// file's identity is, how it is opened) are Tree's, in tree.go; the watcher,
// syncctl's one-shot scan (jobs.Scan) and the upload job all apply them
// through a Tree, so they cannot drift apart.
//
// Naming rules: names starting with '.', or ending in .part, .tmp or '~' are
// ignored, files and directories alike. Images are files whose base name
// matches one of the root's Patterns (filepath.Match; default *.diskdump).
// Metafiles are _template.meta (affects every image in its directory and
// below) and <image>.meta where <image> matches the patterns.
//
// Symlinks: symlinked directories are never followed (so symlink loops
// cannot trap the walk); they are skipped with a warning logged once. A
// symlinked image or metafile is taken as its root's LinkPolicy says
// (follow_symlinks): by default only when its target resolves inside a watch
// root; otherwise it is reported as an Error wrapping a *LinkError that names
// the link and its target. A taken link is reported under its own path with
// its target's facts; changes to a link's target are noticed by the periodic
// rescan, not by fsnotify. A dangling or looping symlink with an image name
// is reported as an Error. Problems are reported once; ErrorCleared says one
// is over, and each RescanDone lists the root's current problems.
//
// Chmod events are ignored (they are noisy), except for a file the watcher
// found unreadable, which is re-checked at once. Unreadable directories are
// retried on every rescan.
package watch
