package diskguard

import "syscall"

// freeBytes is the space on dir's filesystem available to an unprivileged writer (statfs f_bavail).
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}
