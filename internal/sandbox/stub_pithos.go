package sandbox

// TEMPORARY: replaced by the Pithos+ storage and handlers (store.go, pithos_*.go).

import "net/http"

type Store struct{}

func openStore(dir string, blockSize int, quota int64) (*Store, error) { return &Store{}, nil }
func (st *Store) Close() error                                         { return nil }
func (st *Store) ObjectByPath(user, account, container, name string) (*ObjectInfo, error) {
	return nil, &ErrNotFound{Msg: "Object does not exist"}
}
func (st *Store) ObjectByUUID(user, uuid string) (*ObjectInfo, error) {
	return nil, &ErrNotFound{Msg: "Object does not exist"}
}
func (st *Store) UpdateObjectMeta(user, account, container, name, domain string, meta map[string]string, replace bool) error {
	return nil
}
func (st *Store) SetPermissions(user, account, container, name string, p Permissions) error {
	return nil
}
func (st *Store) DomainObjects(user, domain string) ([]*ObjectInfo, error) { return nil, nil }
func (st *Store) Usage(account string) (int64, error)                      { return 0, nil }

var _ objectStore = (*Store)(nil)

func (s *Server) servePithos(w http.ResponseWriter, r *http.Request, rest string) {
	endpointNotFound(w, r)
}
