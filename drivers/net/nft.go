//go:build linux

package net

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"hutch/plan"
)

// NftDriver manages hutch's nftables rules (plan.KindNftRule) in the table
// `inet hutch` of the host's network namespace, through nf_tables netlink
// messages (github.com/google/nftables): no nft binary is needed.
//
// Each rule carries the comment "hutch:" and its resource ID in its user
// data (NFTA_RULE_USERDATA, in nft's own comment encoding, so `nft list
// table inet hutch` shows it), which is how it is found again: hutch never touches a rule,
// chain or table but its own. Changes go to the kernel as one nf_tables
// transaction (a batch), so a rule is never seen half replaced.
type NftDriver struct {
	d *Driver
	// netns is the network namespace to work in: "" for the host's, else
	// the path of a namespace file (tests use their own namespace).
	netns string
	// deletes gathers the deletes that arrive while one is committed.
	deletes nftBatcher
}

// Nft is the reconcile driver of plan.KindNftRule.
func (d *Driver) Nft() *NftDriver { return &NftDriver{d: d} }

// Kind is plan.KindNftRule.
func (n *NftDriver) Kind() plan.Kind { return plan.KindNftRule }

// nftComment is the comment that marks the rule with resource ID id.
func nftComment(id string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, markPrefix+id)
}

// ruleID returns the ID in a rule's comment, "" when it has none of hutch's.
func ruleID(r *nftables.Rule) string {
	c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	id, ok := strings.CutPrefix(c, markPrefix)
	if !ok {
		return ""
	}
	return id
}

func asNftRule(r plan.Resource) (*plan.NftRule, error) {
	rule, ok := r.(*plan.NftRule)
	if !ok || rule == nil {
		return nil, fmt.Errorf("nftables driver: resource %T is not a *plan.NftRule", r)
	}
	return rule, nil
}

var nftTable = &nftables.Table{Family: nftables.TableFamilyINet, Name: plan.NftTable}

// nftChain is the base chain called name in hutch's table, as it is made.
func nftChain(name string) (*nftables.Chain, error) {
	accept := nftables.ChainPolicyAccept
	switch name {
	case plan.NftPostrouting:
		return &nftables.Chain{Name: name, Table: nftTable, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource}, nil
	case plan.NftForward:
		return &nftables.Chain{Name: name, Table: nftTable, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept}, nil
	case plan.NftPrerouting:
		return &nftables.Chain{Name: name, Table: nftTable, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest}, nil
	case plan.NftOutput:
		return &nftables.Chain{Name: name, Table: nftTable, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest}, nil
	}
	return nil, fmt.Errorf("no chain %q in table inet %s", name, plan.NftTable)
}

// ipsDstNAT is IPS_DST_NAT of the conntrack status bits
// (include/uapi/linux/netfilter/nf_conntrack_common.h).
const ipsDstNAT = 1 << 5

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL-padded. A prefix is compared without the padding.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// nftExprs builds the rule's expressions: each match loads a value into
// register 1 and compares it, and the verdict ends the rule. Matches come
// in a fixed order (source, destination, local addresses, protocol and
// port, conntrack, interfaces), so that a rule reads back as it was
// written.
func nftExprs(r *plan.NftRule) ([]expr.Any, error) {
	var e ruleExprs
	if err := e.addSrc(r); err != nil {
		return nil, err
	}
	if err := e.addDst(r); err != nil {
		return nil, err
	}
	e.addLocal(r)
	if err := e.addProto(r); err != nil {
		return nil, err
	}
	e.addDNATed(r)
	e.addIfaces(r)
	if err := e.addVerdict(r); err != nil {
		return nil, err
	}
	return e, nil
}

// ruleExprs are a rule's expressions as nftExprs adds them.
type ruleExprs []expr.Any

// meta matches a meta key (nfproto, l4proto, iifname, oifname).
func (e *ruleExprs) meta(key expr.MetaKey, op expr.CmpOp, data []byte) {
	*e = append(*e, &expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: data})
}

// addSrc matches the source subnet (ip saddr / ip6 saddr), after the
// family.
func (e *ruleExprs) addSrc(r *plan.NftRule) error {
	if r.Src == "" {
		return nil
	}
	p, err := netip.ParsePrefix(r.Src)
	if err != nil {
		return fmt.Errorf("nftables rule %s: src: %w", r.Name, err)
	}
	p = p.Masked()
	proto, off := byte(unix.NFPROTO_IPV4), uint32(12) // struct iphdr's saddr
	if p.Addr().Is6() {
		proto, off = unix.NFPROTO_IPV6, 8 // struct ipv6hdr's saddr
	}
	addr := p.Addr().AsSlice()
	mask := netipMask(p)
	e.meta(expr.MetaKeyNFPROTO, expr.CmpOpEq, []byte{proto})
	*e = append(*e,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(addr))},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(addr)), Mask: mask, Xor: make([]byte, len(addr))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
	return nil
}

// addDst matches the family of the destination, dnat's target or notDst
// (unless addSrc did), then the destination address (dst) or its
// exclusion (notDst).
func (e *ruleExprs) addDst(r *plan.NftRule) error {
	if r.To == "" && r.Dst == "" && r.NotDst == "" {
		return nil
	}
	// dnat and an address match need the family: meta nfproto.
	a := r.Dst
	if a == "" && r.To != "" {
		ap, err := netip.ParseAddrPort(r.To)
		if err != nil {
			return fmt.Errorf("nftables rule %s: to: %w", r.Name, err)
		}
		a = ap.Addr().String()
	}
	if a == "" {
		a = r.NotDst
	}
	ip, err := netip.ParseAddr(a)
	if err != nil {
		return fmt.Errorf("nftables rule %s: dst: %w", r.Name, err)
	}
	proto, off := byte(unix.NFPROTO_IPV4), uint32(16) // struct iphdr's daddr
	if ip.Is6() {
		proto, off = unix.NFPROTO_IPV6, 24 // struct ipv6hdr's daddr
	}
	if r.Src == "" {
		e.meta(expr.MetaKeyNFPROTO, expr.CmpOpEq, []byte{proto})
	}
	if r.Dst != "" {
		*e = append(*e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(ip.AsSlice()))},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip.AsSlice()})
	}
	if r.NotDst != "" {
		not, err := netip.ParseAddr(r.NotDst)
		if err != nil || not.Is6() != ip.Is6() {
			return fmt.Errorf("nftables rule %s: notDst %q: not an address of the rule's family", r.Name, r.NotDst)
		}
		*e = append(*e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(not.AsSlice()))},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: not.AsSlice()})
	}
	return nil
}

// addLocal matches a source or destination that is an address of the host
// (fib saddr/daddr type local).
func (e *ruleExprs) addLocal(r *plan.NftRule) {
	if r.LocalSrc {
		*e = append(*e, &expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
	}
	if r.LocalDst {
		*e = append(*e, &expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
	}
}

// addProto matches the transport protocol (meta l4proto) and the
// destination port (th dport).
func (e *ruleExprs) addProto(r *plan.NftRule) error {
	if r.Proto == "" {
		return nil
	}
	l4 := map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP}[r.Proto]
	if l4 == 0 {
		return fmt.Errorf("nftables rule %s: unknown protocol %q", r.Name, r.Proto)
	}
	e.meta(expr.MetaKeyL4PROTO, expr.CmpOpEq, []byte{l4})
	if r.DPort != 0 {
		*e = append(*e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(r.DPort))})
	}
	return nil
}

// addDNATed matches a connection whose destination was translated (ct
// status dnat).
func (e *ruleExprs) addDNATed(r *plan.NftRule) {
	if r.DNATed {
		*e = append(*e, &expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)})
	}
}

// addIfaces matches the input and output interfaces by name (iifname,
// oifname), a prefix of the input's, or their exclusion.
func (e *ruleExprs) addIfaces(r *plan.NftRule) {
	if r.IIf != "" {
		e.meta(expr.MetaKeyIIFNAME, expr.CmpOpEq, ifname(r.IIf))
	}
	if r.IIfPrefix != "" {
		e.meta(expr.MetaKeyIIFNAME, expr.CmpOpEq, []byte(r.IIfPrefix))
	}
	if r.NotIIf != "" {
		e.meta(expr.MetaKeyIIFNAME, expr.CmpOpNeq, ifname(r.NotIIf))
	}
	if r.OIf != "" {
		e.meta(expr.MetaKeyOIFNAME, expr.CmpOpEq, ifname(r.OIf))
	}
	if r.NotOIf != "" {
		e.meta(expr.MetaKeyOIFNAME, expr.CmpOpNeq, ifname(r.NotOIf))
	}
}

// addVerdict ends the rule: masquerade (postrouting only), dnat to the
// rule's address and port (prerouting and output only), accept or drop.
func (e *ruleExprs) addVerdict(r *plan.NftRule) error {
	switch r.Verdict {
	case plan.NftMasquerade:
		if r.Chain != plan.NftPostrouting {
			return fmt.Errorf("nftables rule %s: masquerade only in chain %s", r.Name, plan.NftPostrouting)
		}
		*e = append(*e, &expr.Masq{})
	case plan.NftDNAT:
		if r.Chain != plan.NftPrerouting && r.Chain != plan.NftOutput {
			return fmt.Errorf("nftables rule %s: dnat only in chains %s and %s", r.Name, plan.NftPrerouting, plan.NftOutput)
		}
		to, err := netip.ParseAddrPort(r.To)
		if err != nil {
			return fmt.Errorf("nftables rule %s: to: %w", r.Name, err)
		}
		fam := uint32(unix.NFPROTO_IPV4)
		if to.Addr().Is6() {
			fam = unix.NFPROTO_IPV6
		}
		*e = append(*e,
			&expr.Immediate{Register: 1, Data: to.Addr().AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(to.Port())},
			// The kernel reports the max registers as the min ones: so are they
			// written, and read back equal.
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true})
	case plan.NftAccept:
		*e = append(*e, &expr.Verdict{Kind: expr.VerdictAccept})
	case plan.NftDrop:
		*e = append(*e, &expr.Verdict{Kind: expr.VerdictDrop})
	default:
		return fmt.Errorf("nftables rule %s: unknown verdict %q", r.Name, r.Verdict)
	}
	return nil
}

func netipMask(p netip.Prefix) []byte {
	n := p.Addr().BitLen() / 8
	m := make([]byte, n)
	for i := range p.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// nftConn opens an nf_tables netlink connection in the driver's
// namespace. It is a lasting connection, dialled here: the socket is made
// while the namespace file is open (a connection dialled later, at Flush,
// would enter whatever the descriptor number names by then).
func (n *NftDriver) nftConn() (*nftables.Conn, error) {
	if n.netns == "" {
		return nftables.New(nftables.AsLasting())
	}
	f, err := os.Open(n.netns)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(f.Fd())))
}

// lockNetns takes an exclusive flock on the namespace's own nsfs inode
// (every open of /proc/PID/ns/net of one namespace is the same inode), so
// that two hutch processes never interleave "is the table empty?" and
// "delete the table" with each other's rules. It needs no file of its own
// on the host.
func (n *NftDriver) lockNetns() (func(), error) {
	path := n.netns
	if path == "" {
		path = "/proc/self/ns/net"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// ours returns the rules of chain that carry the user data of id, or none
// when the table or chain does not exist.
func ours(c *nftables.Conn, chain *nftables.Chain, id string) ([]*nftables.Rule, error) {
	rules, err := c.GetRules(nftTable, chain)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list chain inet %s %s: %w", plan.NftTable, chain.Name, err)
	}
	var out []*nftables.Rule
	for _, r := range rules {
		if ruleID(r) == id {
			out = append(out, r)
		}
	}
	return out, nil
}

// sameExprs says whether the kernel's expressions are the wanted ones,
// compared in their netlink encoding.
func sameExprs(got, want []expr.Any) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, err1 := expr.Marshal(byte(nftables.TableFamilyINet), got[i])
		w, err2 := expr.Marshal(byte(nftables.TableFamilyINet), want[i])
		if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
			return false
		}
	}
	return true
}

// Observe finds the rule by its user data (NFT_MSG_GETRULE dump of its
// chain): nil when there is none; Differs set when the kernel's rule is
// not the one wanted (changed by hand, or more than one).
func (n *NftDriver) Observe(ctx context.Context, want plan.Resource) (plan.Resource, error) {
	w, err := asNftRule(want)
	if err != nil {
		return nil, err
	}
	chain, err := nftChain(w.Chain)
	if err != nil {
		return nil, err
	}
	exprs, err := nftExprs(w)
	if err != nil {
		return nil, err
	}
	c, err := n.nftConn()
	if err != nil {
		return nil, fmt.Errorf("nftables rule %s: %w", w.Name, err)
	}
	defer c.CloseLasting()
	rules, err := ours(c, chain, w.ID())
	if err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		if w.Verdict == plan.NftDNAT && w.Chain == plan.NftPrerouting && w.DPort != 0 {
			// Apply would publish the port: nothing else may hold it.
			return nil, n.portFree(w)
		}
		return nil, nil
	}
	got := *w
	got.Differs = len(rules) > 1 || !sameExprs(rules[0].Exprs, exprs)
	return &got, nil
}

// Diff: a rule that differs is replaced in place (one transaction deletes
// the kernel's and adds the wanted one).
func (n *NftDriver) Diff(got, want plan.Resource) (fields, forceReplace []string) {
	g, err1 := asNftRule(got)
	w, err2 := asNftRule(want)
	if err1 != nil || err2 != nil {
		return []string{"type"}, []string{"type"}
	}
	if g.Differs || g.Chain != w.Chain {
		fields = append(fields, "rule")
	}
	return fields, nil
}

// Apply makes the table and the rule's chain when missing and puts the
// rule in place of any rule carrying its ID, in one transaction.
func (n *NftDriver) Apply(ctx context.Context, ch *plan.Change) error {
	w, err := asNftRule(ch.After)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	exprs, err := nftExprs(w)
	if err != nil {
		return err
	}
	t, err := n.begin(w)
	if err != nil {
		return err
	}
	defer t.end()
	c, chain, old := t.c, t.chain, t.old
	if len(old) == 1 && sameExprs(old[0].Exprs, exprs) {
		return nil
	}
	c.AddTable(nftTable)
	c.AddChain(chain)
	for _, r := range old {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("nftables rule %s: delete handle %d: %w", w.Name, r.Handle, err)
		}
	}
	c.AddRule(&nftables.Rule{Table: nftTable, Chain: chain, Exprs: exprs, UserData: nftComment(w.ID())})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables rule %s: add to chain inet %s %s: %w", w.Name, plan.NftTable, w.Chain, err)
	}
	return nil
}

// nftTxn is an open change of one rule: the namespace locked, a
// connection, the rule's chain and the kernel's rules carrying its ID.
type nftTxn struct {
	c      *nftables.Conn
	chain  *nftables.Chain
	old    []*nftables.Rule
	unlock func()
}

func (t *nftTxn) end() {
	t.c.CloseLasting()
	t.unlock()
}

// begin locks the namespace's rules, connects and finds the rule's
// current copies.
func (n *NftDriver) begin(w *plan.NftRule) (*nftTxn, error) {
	chain, err := nftChain(w.Chain)
	if err != nil {
		return nil, err
	}
	unlock, err := n.lockNetns()
	if err != nil {
		return nil, fmt.Errorf("nftables rule %s: %w", w.Name, err)
	}
	c, err := n.nftConn()
	if err != nil {
		unlock()
		return nil, fmt.Errorf("nftables rule %s: %w", w.Name, err)
	}
	old, err := ours(c, chain, w.ID())
	if err != nil {
		c.CloseLasting()
		unlock()
		return nil, fmt.Errorf("nftables rule %s: %w", w.Name, err)
	}
	return &nftTxn{c: c, chain: chain, old: old, unlock: unlock}, nil
}

// Delete removes every rule carrying the rule's ID; when that leaves
// hutch's table without rules, the table goes too (with its chains), so
// that `nft list ruleset` is as it was before hutch.
//
// The deletes that reach the driver while another is being committed go to
// the kernel together, in one transaction: a container's published port is
// four rules, deleted by four parallel steps, and each nf_tables commit that
// removes rules or chains waits for an RCU grace period (10-20 ms here), so
// one by one they made `hutch delete` of the web server take 100 ms.
func (n *NftDriver) Delete(ctx context.Context, r plan.Resource) error {
	w, err := asNftRule(r)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return n.deletes.run(w, n.deleteRules)
}

// nftBatcher runs a commit for everything queued, one commit at a time:
// the first caller commits its own and then whatever arrived meanwhile,
// the others wait for their result.
type nftBatcher struct {
	mu      sync.Mutex
	busy    bool
	pending []*nftDelete
}

type nftDelete struct {
	w    *plan.NftRule
	done chan error
}

func (b *nftBatcher) run(w *plan.NftRule, commit func([]*plan.NftRule) []error) error {
	me := &nftDelete{w: w, done: make(chan error, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, me)
	if b.busy {
		b.mu.Unlock()
		return <-me.done
	}
	b.busy = true
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending = nil
		b.mu.Unlock()
		ws := make([]*plan.NftRule, len(batch))
		for i, d := range batch {
			ws[i] = d.w
		}
		errs := commit(ws)
		for i, d := range batch {
			d.done <- errs[i]
		}
		b.mu.Lock()
	}
	b.busy = false
	b.mu.Unlock()
	return <-me.done
}

// deleteRules deletes the rules of ws in one transaction, then hutch's
// emptied chains and table. When the transaction fails with several rules
// in it, each is deleted alone, so that one rule's error is its own.
func (n *NftDriver) deleteRules(ws []*plan.NftRule) []error {
	errs, err := n.deleteTxn(ws)
	if err == nil {
		return errs
	}
	for i, w := range ws {
		if errs[i] != nil {
			continue
		}
		if len(ws) == 1 {
			errs[i] = err
			continue
		}
		one, err := n.deleteTxn([]*plan.NftRule{w})
		if errs[i] = one[0]; errs[i] == nil {
			errs[i] = err
		}
	}
	return errs
}

// deleteTxn deletes every rule carrying the ID of a rule of ws, in one
// transaction under the namespace's lock, and drops what that left empty.
// errs holds each rule's own error (its chain unreadable); err is the
// transaction's.
func (n *NftDriver) deleteTxn(ws []*plan.NftRule) (errs []error, err error) {
	errs = make([]error, len(ws))
	unlock, err := n.lockNetns()
	if err != nil {
		return errs, fmt.Errorf("nftables: %w", err)
	}
	defer unlock()
	c, err := n.nftConn()
	if err != nil {
		return errs, fmt.Errorf("nftables: %w", err)
	}
	defer c.CloseLasting()
	names := make([]string, 0, len(ws))
	for i, w := range ws {
		names = append(names, w.Name)
		chain, err := nftChain(w.Chain)
		if err != nil {
			errs[i] = err
			continue
		}
		old, err := ours(c, chain, w.ID())
		if err != nil {
			errs[i] = fmt.Errorf("nftables rule %s: %w", w.Name, err)
			continue
		}
		for _, r := range old {
			if err := c.DelRule(r); err != nil {
				errs[i] = fmt.Errorf("nftables rule %s: delete handle %d: %w", w.Name, r.Handle, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return errs, fmt.Errorf("nftables rules %s: delete: %w", strings.Join(names, ", "), err)
	}
	if err := n.dropEmptyTable(c); err != nil {
		return errs, err
	}
	return errs, nil
}

// dropEmptyTable deletes hutch's chains that hold no rule, and the table
// when none is left, so that nothing of hutch's outlives its last rule.
// The caller holds the namespace's lock.
func (n *NftDriver) dropEmptyTable(c *nftables.Conn) error {
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nftables table inet %s: list chains: %w", plan.NftTable, err)
	}
	mine, kept := 0, 0
	for _, ch := range chains {
		if ch.Table.Name != plan.NftTable {
			continue
		}
		mine++
		rules, err := c.GetRules(nftTable, ch)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("nftables table inet %s: list chain %s: %w", plan.NftTable, ch.Name, err)
		}
		if len(rules) > 0 {
			kept++
			continue
		}
		c.DelChain(&nftables.Chain{Name: ch.Name, Table: nftTable})
	}
	if mine == 0 {
		if t, err := c.ListTableOfFamily(plan.NftTable, nftables.TableFamilyINet); err != nil || t == nil {
			return nil // no table
		}
	}
	if kept == 0 {
		c.DelTable(nftTable)
	}
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables table inet %s: delete empty chains: %w", plan.NftTable, err)
	}
	return nil
}

// NftRules lists the rules of hutch's table as the kernel holds them: per
// chain, the ID in each rule's comment ("" for a rule without one), for
// inspect and the tests.
func (n *NftDriver) NftRules() (map[string][]string, error) {
	c, err := n.nftConn()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	out := map[string][]string{}
	for _, name := range []string{plan.NftPrerouting, plan.NftOutput, plan.NftPostrouting, plan.NftForward} {
		chain, _ := nftChain(name)
		rules, err := c.GetRules(nftTable, chain)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			out[name] = append(out[name], ruleID(r))
		}
	}
	return out, nil
}
