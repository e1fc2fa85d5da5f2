package session

import (
	"encoding/json"
	"testing"
)

func TestSecretsEncoding(t *testing.T) {
	want := secrets{IDToken: "id.tok.en", AccessToken: "at", RefreshToken: "", Claims: []byte(`{"sub":"alice"}`)}
	got, err := unmarshalSecrets(want.marshal())
	if err != nil || got.IDToken != want.IDToken || got.AccessToken != want.AccessToken || got.RefreshToken != "" || string(got.Claims) != string(want.Claims) {
		t.Fatalf("round trip: got %+v, %v; want %+v", got, err, want)
	}
	// Records sealed before the binary form (JSON) still read.
	old, _ := json.Marshal(want)
	if got, err := unmarshalSecrets(old); err != nil || got.AccessToken != "at" || string(got.Claims) != string(want.Claims) {
		t.Errorf("JSON record: got %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {0x02}, {secretsV1, 0x05, 'a'}, {secretsV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := unmarshalSecrets(bad); err == nil {
			t.Errorf("%x: decoded, want an error", bad)
		}
	}
}
