package inspect_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagesync/imagesync/internal/inspect"
	"github.com/imagesync/imagesync/internal/inspect/inspecttest"
)

// BenchmarkDetect4GiB inspects a 4 GiB disk (sparse: MBR, a 4 GiB ext4
// root made by mke2fs -d) and reports the bytes read per detection.
//
//	go test -run '^$' -bench Detect4GiB -benchtime 20x ./internal/inspect/
func BenchmarkDetect4GiB(b *testing.B) {
	dir := b.TempDir()
	root := inspecttest.DebianRoot(b, filepath.Join(dir, "root"))
	p := filepath.Join(dir, "disk.img")
	inspecttest.MBRExt(b, p, 4<<30, "ext4", root)
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var rep *inspect.Report
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if rep, err = inspect.Detect(context.Background(), f, fi.Size(), inspect.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if rep.Properties[inspect.OS] != "debian" || len(rep.Properties) != 7 {
		b.Fatalf("detected %v (notes %q)", rep.Properties, rep.Notes)
	}
	b.ReportMetric(float64(rep.BytesRead), "bytes-read/op")
}
