package grokgate

import (
	"errors"
	"testing"
)

func TestLimitsResolve(t *testing.T) {
	def := Limits{RPM: 60, TPM: 1000}
	key := Limits{RPM: 0, TPM: NoLimit, MaxStreams: 2}
	got := key.Resolve(def)
	want := Limits{RPM: 60, TPM: 0, MaxStreams: 2}
	if got != want {
		t.Fatalf("Resolve = %+v, want %+v (0 inherits, -1 lifts the default)", got, want)
	}
	if (Limits{RPM: -2}).Check() == nil || (Limits{RPM: -1, TPM: 5}).Check() != nil {
		t.Fatal("Check: -1 is allowed, below it is not")
	}
	var fe *FieldError
	if err := (Limits{RPM: 1, MaxStreams: -2}).Check(); !errors.As(err, &fe) || fe.Field != "max_streams" || !errors.Is(err, ErrBadLimit) {
		t.Fatalf("Check = %v: want the bad limit named, wrapping ErrBadLimit", err)
	}
	rpm := int64(5)
	if got := (LimitsUpdate{RPM: &rpm}).Apply(Limits{RPM: 1, TPM: 7}); got != (Limits{RPM: 5, TPM: 7}) {
		t.Fatalf("Apply = %+v", got)
	}
}
