package inspect_test

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/imagesync/imagesync/internal/inspect"
)

func TestParseOSRelease(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"Debian 12", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
			map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "NAME": "Debian GNU/Linux", "ID": "debian"}},
		{"single quotes, escapes, comments", "# a comment\nNAME='Fedora Linux'\nVERSION=\"39 (\\\"Cloud\\\" \\$x)\"\n  ID=fedora # trailing\n",
			map[string]string{"NAME": "Fedora Linux", "VERSION": `39 ("Cloud" $x)`, "ID": "fedora"}},
		{"malformed lines are skipped", "ID=\"open\nlower=x\n=v\nGOOD=1\nNOEQUALS\n",
			map[string]string{"GOOD": "1"}},
		{"CRLF and empty values", "ID=ubuntu\r\nVARIANT=\r\n", map[string]string{"ID": "ubuntu", "VARIANT": ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, inspect.ParseOSRelease([]byte(tc.in)))
		})
	}
}

func TestLoginUsers(t *testing.T) {
	passwd := `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/bin/sh
sync:x:4:65534:sync:/bin:/bin/sync
+nisuser::::::
# comment
broken line
alice:x:1000:1000:Alice:/home/alice:/bin/bash
carol:x:1002:1002::/home/carol:/bin/false
dave:x:1003:1003::/home/dave:
bob:x:1001:1001::/home/bob:/usr/bin/zsh
alice:x:1000:1000:Alice again:/home/alice:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
old:x:500:500::/home/old:/bin/bash
`
	accts := inspect.ParsePasswd([]byte(passwd))
	assert.Equal(t, []string{"root", "alice", "bob"}, inspect.LoginUsers(accts, 1000))
	assert.Equal(t, []string{"root", "alice", "bob", "old"}, inspect.LoginUsers(accts, 500), "RHEL 6's UID_MIN")
	uid, ok := inspect.ParseUIDMin([]byte("# login.defs\nUID_MIN   500\nUID_MAX 60000\n"))
	assert.True(t, ok)
	assert.Equal(t, uint64(500), uid)
	_, ok = inspect.ParseUIDMin([]byte("UID_MIN abc\n"))
	assert.False(t, ok)
}

func TestKernelVersions(t *testing.T) {
	names := []string{"vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-18-amd64", "vmlinuz-5.10.0-28-amd64", "vmlinuz", "config-6.1.0-18-amd64",
		"vmlinux-6.1.0-10-amd64", "vmlinuz-0-rescue-1234", "initrd.img-6.1.0-18-amd64"}
	var vers []string
	for _, n := range names {
		if v, ok := inspect.KernelVersion(n); ok {
			vers = append(vers, v)
		}
	}
	sort.Slice(vers, func(i, j int) bool { return inspect.CompareVersions(vers[i], vers[j]) < 0 })
	assert.Equal(t, []string{"0-rescue-1234", "5.10.0-28-amd64", "6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-18-amd64"}, vers)
	assert.Equal(t, 0, inspect.CompareVersions("6.01", "6.1"))
	assert.Equal(t, 1, inspect.CompareVersions("6.1.1", "6.1"))
}
