package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// SecretFiles checks the permissions of the files that hold secrets, as ssh
// does for private keys: cloud.token_file, redis.password_file and
// redis.sentinel.password_file (when they are what syncd reads), and http.web_config_file (password hashes,
// the TLS key's path). A file that group or others can read is reported;
// with strict_permissions the problems are an error, otherwise warnings.
func (c *Config) SecretFiles() (warnings []string, err error) {
	var found []string
	check := func(key, path string) {
		if path == "" {
			return
		}
		st, err := os.Stat(path)
		if err != nil {
			return // reading it fails later with a clearer message
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			who := "group and others"
			switch {
			case perm&0o070 == 0:
				who = "others"
			case perm&0o007 == 0:
				who = "its group"
			}
			found = append(found, fmt.Sprintf("%s %s is readable by %s (mode %04o): chmod 600 it, as ssh requires of private keys", key, path, who, perm))
		}
	}
	if c.Cloud.Token == "" {
		check("cloud.token_file", c.Cloud.TokenFile)
	}
	if c.Redis.Password == "" {
		check("redis.password_file", c.Redis.PasswordFile)
	}
	if c.Redis.Sentinel.Password == "" {
		check("redis.sentinel.password_file", c.Redis.Sentinel.PasswordFile)
	}
	check("http.web_config_file", c.HTTP.WebConfigFile)
	if len(found) == 0 {
		return nil, nil
	}
	if c.StrictPermissions {
		return nil, errors.New(strings.Join(found, "; ") + " (strict_permissions: true refuses to start until then)")
	}
	return found, nil
}

// StateDirWarning says when the state directory (the hashmap cache: which
// files exist, their sizes and block hashes) can be read by group or others.
func StateDirWarning(dir string, st fs.FileInfo) string {
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("state_dir %s is accessible by group or others (mode %04o): chmod 700 it", dir, perm)
	}
	return ""
}
