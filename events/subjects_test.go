package events

import "testing"

// PartitionOf is FNV-1a 32-bit mod n, as nats-server's partition()
// (internal/testing/deploytest checks the two agree on a real server). The
// published test vector: FNV-1a 32 of "a" is 0xe40c292c = 3826002220.
func TestPartitionOfIsFNV1a32(t *testing.T) {
	if got := PartitionOf("a", 1000); got != 220 {
		t.Errorf("PartitionOf(a, 1000) = %d, want 220 (3826002220 mod 1000)", got)
	}
	for _, id := range []string{"user_123", "acme.prod *>", "日本語"} {
		if p := PartitionOf(Token(id), 4); p < 0 || p >= 4 {
			t.Errorf("PartitionOf(%q, 4) = %d, out of range", id, p)
		}
	}
}

// A partitioned subject maps back to the request subject it came from,
// and any other subject is left alone.
func TestUnmapPartition(t *testing.T) {
	for _, op := range []Op{OpPreflight, OpBudget} {
		orig := RequestSubject(op, "acme.prod *>")
		mapped := PartitionPrefix + "3." + orig[len("agentbill."):]
		if got := UnmapPartition(mapped); got != orig {
			t.Errorf("UnmapPartition(%q) = %q, want %q", mapped, got, orig)
		}
		if got := UnmapPartition(orig); got != orig {
			t.Errorf("UnmapPartition(%q) = %q, want it unchanged", orig, got)
		}
	}
	if got := UnmapPartition("agentbill.p.3"); got != "agentbill.p.3" {
		t.Errorf("UnmapPartition of a subject with nothing after the partition = %q", got)
	}
}
