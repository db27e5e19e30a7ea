// Command tlogcheck verifies the platform's public log with Go's own transparency-log code
// (golang.org/x/mod/sumdb/tlog and sumdb/note), written by others: the signature of the latest
// checkpoint and of an older one, the tiles (each checked against the signed root), the root
// recomputed from the tiles, an entry's inclusion and the consistency of the two checkpoints,
// both with the platform's JSON proofs and with proofs Go computes itself from the tiles.
//
// With -witness WVKEY, the latest checkpoint must also carry that witness's cosignature (C2SP
// tlog-cosignature, Ed25519 cosignature/v1, verifier key type 0x04): note.Open is given both
// verifiers, and both signatures must be among the ones it verified.
//
// Usage: tlogcheck -url http://host:port/journal -vkey VKEY -origin ORIGIN -old FILE -index I [-witness WVKEY]
//
// Exit 0 with one "ok:" line per check; 1 with "FAIL:" and the reason at the first failure.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var base string

// cosigner verifies a witness's cosignature/v1 signatures: x/mod 0.7.0's note package knows only
// the log signature type (0x01), so this note.Verifier follows C2SP tlog-cosignature: key ID
// SHA-256(name || "\n" || 0x04 || key)[:4]; signature = u64 timestamp || Ed25519 signature over
// "cosignature/v1\ntime <timestamp>\n" || the note's text.
type cosigner struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func newCosigner(vkey string) (*cosigner, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed witness key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		return nil, errors.New("the witness key is not an Ed25519 cosignature key (type 0x04)")
	}
	digest := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	hash := binary.BigEndian.Uint32(digest[:4])
	if fmt.Sprintf("%08x", hash) != parts[1] {
		return nil, errors.New("the witness key's ID does not match its name and key")
	}
	return &cosigner{name: parts[0], hash: hash, key: ed25519.PublicKey(raw[1:])}, nil
}

func (c *cosigner) Name() string    { return c.name }
func (c *cosigner) KeyHash() uint32 { return c.hash }
func (c *cosigner) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	timestamp := binary.BigEndian.Uint64(sig[:8])
	if timestamp >= 1<<63 {
		return false
	}
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", timestamp)), msg...)
	return ed25519.Verify(c.key, signed, sig[8:])
}

func fetch(path string) ([]byte, error) {
	resp, err := http.Get(base + "/" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body, nil
}

// openCheckpoint checks the note's signature and parses the C2SP checkpoint body
// (tlog.ParseTree only reads the go.sum database's own origin line).
func openCheckpoint(msg []byte, verifiers note.Verifiers, origin string) (tlog.Tree, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return tlog.Tree{}, err
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != origin {
		return tlog.Tree{}, fmt.Errorf("checkpoint origin %q, want %q", lines[0], origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return tlog.Tree{}, fmt.Errorf("malformed size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return tlog.Tree{}, fmt.Errorf("malformed root %q", lines[2])
	}
	var h tlog.Hash
	copy(h[:], raw)
	return tlog.Tree{N: size, Hash: h}, nil
}

// tiles fetches tiles from the platform; Go's paths carry the height (tile/8/L/N), C2SP's do not.
type tiles struct{ fetched int }

func (*tiles) Height() int { return 8 }

func (t *tiles) ReadTiles(list []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(list))
	for i, tile := range list {
		path := tile.Path()
		prefix := "tile/8/"
		if !strings.HasPrefix(path, prefix) {
			return nil, fmt.Errorf("unexpected tile path %s", path)
		}
		data, err := fetch("tile/" + strings.TrimPrefix(path, prefix))
		if err != nil {
			return nil, err
		}
		if len(data) != tile.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s: %d bytes", path, len(data))
		}
		out[i] = data
		t.fetched++
	}
	return out, nil
}

func (*tiles) SaveTiles([]tlog.Tile, [][]byte) {}

type proofBody struct {
	Proof []string `json:"proof"`
}

func proofFrom(path string) ([]tlog.Hash, error) {
	body, err := fetch(path)
	if err != nil {
		return nil, err
	}
	var decoded proofBody
	if err := json.Unmarshal(body, &decoded); err != nil {
		return nil, err
	}
	hashes := make([]tlog.Hash, len(decoded.Proof))
	for i, p := range decoded.Proof {
		raw, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(raw) != tlog.HashSize {
			return nil, fmt.Errorf("malformed proof hash %q", p)
		}
		copy(hashes[i][:], raw)
	}
	return hashes, nil
}

func equal(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func run() error {
	url := flag.String("url", "", "base URL of the public log (…/journal)")
	vkey := flag.String("vkey", "", "verifier key name+id+key")
	origin := flag.String("origin", "", "the log's origin")
	oldFile := flag.String("old", "", "an older signed checkpoint (file)")
	index := flag.Int64("index", 0, "leaf index whose inclusion to check")
	witnessKey := flag.String("witness", "", "a witness's verifier key whose cosignature is required")
	flag.Parse()
	base = strings.TrimRight(*url, "/")

	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		return fmt.Errorf("verifier key: %w", err)
	}
	verifiers := note.VerifierList(verifier)

	msg, err := fetch("checkpoint")
	if err != nil {
		return err
	}
	tree, err := openCheckpoint(msg, verifiers, *origin)
	if err != nil {
		return fmt.Errorf("latest checkpoint: %w", err)
	}
	fmt.Printf("ok: checkpoint signature (%s), tree size %d\n", verifier.Name(), tree.N)

	if *witnessKey != "" {
		witness, err := newCosigner(*witnessKey)
		if err != nil {
			return fmt.Errorf("witness key: %w", err)
		}
		n, err := note.Open(msg, note.VerifierList(verifier, witness))
		if err != nil {
			return fmt.Errorf("latest checkpoint with the witness's key: %w", err)
		}
		found := map[string]bool{}
		for _, sig := range n.Sigs {
			found[sig.Name] = true
		}
		if !found[verifier.Name()] || !found[witness.Name()] {
			return fmt.Errorf("the checkpoint is not cosigned by the witness %s", witness.Name())
		}
		fmt.Printf("ok: witness cosignature (%s), note.Open with both verifiers\n", witness.Name())
	}

	oldMsg, err := os.ReadFile(*oldFile)
	if err != nil {
		return err
	}
	old, err := openCheckpoint(oldMsg, verifiers, *origin)
	if err != nil {
		return fmt.Errorf("older checkpoint: %w", err)
	}
	fmt.Printf("ok: older checkpoint signature, tree size %d\n", old.N)

	reader := &tiles{}
	hashes := tlog.TileHashReader(tree, reader)
	root, err := tlog.TreeHash(tree.N, hashes)
	if err != nil {
		return fmt.Errorf("tiles: %w", err)
	}
	if root != tree.Hash {
		return errors.New("the root recomputed from the tiles differs from the checkpoint's")
	}
	fmt.Printf("ok: tiles verified against the signed root, root recomputed from them (%d tiles)\n", reader.fetched)

	bundle, err := fetch(fmt.Sprintf("tile/entries/%s", strings.TrimPrefix(tlog.Tile{H: 8, L: 0, N: *index / 256, W: 256}.Path(), "tile/8/0/")))
	if err != nil {
		// The rightmost bundle is partial.
		width := tree.N - (*index/256)*256
		if width > 256 {
			width = 256
		}
		bundle, err = fetch(fmt.Sprintf("tile/entries/%s", strings.TrimPrefix(tlog.Tile{H: 8, L: 0, N: *index / 256, W: int(width)}.Path(), "tile/8/0/")))
		if err != nil {
			return err
		}
	}
	entry, err := bundleEntry(bundle, int(*index%256))
	if err != nil {
		return err
	}
	leaf := tlog.RecordHash(entry)
	stored, err := hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, *index)})
	if err != nil {
		return err
	}
	// x/mod 0.7.0's tileHashReader skips authenticating some full tiles against their parents
	// (its loop starts at len(stx), which counts subtrees, not the distinct tiles fetched for
	// them), so the tile's leaf hash is checked here against the signed root with Go's own
	// inclusion proof, and against the entry.
	fromTiles, err := tlog.ProveRecord(tree.N, *index, hashes)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(fromTiles, tree.N, tree.Hash, *index, stored[0]); err != nil {
		return fmt.Errorf("tile holding leaf %d: its hash is not in the signed tree: %w", *index, err)
	}
	if stored[0] != leaf {
		return fmt.Errorf("entry %d: its record hash is not the tile's leaf hash", *index)
	}
	fmt.Printf("ok: entry %d from its bundle hashes to the tile's leaf hash, proven in the signed tree\n", *index)

	ours, err := proofFrom(fmt.Sprintf("proof/inclusion?index=%d&size=%d", *index, tree.N))
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(ours, tree.N, tree.Hash, *index, leaf); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	theirs, err := tlog.ProveRecord(tree.N, *index, hashes)
	if err != nil {
		return err
	}
	if !equal(ours, theirs) {
		return errors.New("the platform's inclusion proof differs from Go's")
	}
	fmt.Printf("ok: inclusion of entry %d in tree %d (the platform's proof, equal to Go's)\n", *index, tree.N)

	consistency, err := proofFrom(fmt.Sprintf("proof/consistency?from=%d&to=%d", old.N, tree.N))
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(consistency, tree.N, tree.Hash, old.N, old.Hash); err != nil {
		return fmt.Errorf("consistency proof: %w", err)
	}
	goTree, err := tlog.ProveTree(tree.N, old.N, hashes)
	if err != nil {
		return err
	}
	if !equal(consistency, goTree) {
		return errors.New("the platform's consistency proof differs from Go's")
	}
	fmt.Printf("ok: tree %d is consistent with tree %d (the platform's proof, equal to Go's)\n", tree.N, old.N)
	return nil
}

// bundleEntry is entry i of a C2SP entry bundle (big-endian uint16 length, then the entry).
func bundleEntry(bundle []byte, i int) ([]byte, error) {
	r := bytes.NewReader(bundle)
	for n := 0; ; n++ {
		var size uint16
		if err := binary.Read(r, binary.BigEndian, &size); err != nil {
			return nil, fmt.Errorf("entry bundle: no entry %d", i)
		}
		entry := make([]byte, size)
		if _, err := io.ReadFull(r, entry); err != nil {
			return nil, err
		}
		if n == i {
			return entry, nil
		}
	}
}

func main() {
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}
