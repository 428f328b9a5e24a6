package testkit

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// Proxy is a TCP proxy for fault tests: it listens on a free port of
// 127.0.0.1 and forwards every connection to a target. Stall makes every
// link, old and new, a black hole without closing anything (what a client
// sees when the peer or a middlebox vanishes: no data, no FIN, no RST);
// Resume forwards again; Reset closes every connection with an RST.
//
// While stalled, the proxy still accepts connections (its kernel completes
// the handshake, as a real listener would) but neither dials the target nor
// forwards a byte, and holds back an end of stream until Resume.
type Proxy struct {
	tb     testing.TB
	ln     net.Listener
	target string

	mu      sync.Mutex
	stalled bool
	resume  chan struct{} // closed by Resume; replaced by Stall
	links   map[*link]struct{}
	closed  bool
	wg      sync.WaitGroup
	resets  int
	accepts int
}

// link is one proxied connection: the client's side and the target's.
type link struct {
	client net.Conn
	done   chan struct{}
	once   sync.Once

	mu     sync.Mutex
	server net.Conn // nil until dialed
}

// StartProxy starts a proxy to target (host:port); it stops with the test.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testkit: proxy listen: %v", err)
	}
	resume := make(chan struct{})
	close(resume)
	p := &Proxy{tb: tb, ln: ln, target: target, resume: resume, links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr is the proxy's listen address; Port its port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }
func (p *Proxy) Port() int    { return p.ln.Addr().(*net.TCPAddr).Port }

// Stall stops forwarding in both directions, on every connection and on
// those accepted from now on, without closing any.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stalled {
		p.stalled = true
		p.resume = make(chan struct{})
	}
}

// Resume forwards again whatever was held back, and new data.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled {
		p.stalled = false
		close(p.resume)
	}
}

// Reset closes every current connection on both sides with an RST (linger
// 0) and returns how many there were. New connections are served as usual.
func (p *Proxy) Reset() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.resets += len(links)
	p.mu.Unlock()
	for _, l := range links {
		l.reset()
	}
	return len(links)
}

// Stats returns how many connections the proxy accepted and reset so far.
func (p *Proxy) Stats() (accepted, reset int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts, p.resets
}

// Close stops listening and resets every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Resume()
	p.Reset()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.accepts++
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// gate blocks while the proxy is stalled; it returns false when the link
// was reset meanwhile.
func (p *Proxy) gate(l *link) bool {
	p.mu.Lock()
	resume := p.resume
	p.mu.Unlock()
	select {
	case <-resume:
		return true
	case <-l.done:
		return false
	}
}

func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.close()
	}()
	if !p.gate(l) {
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return // the client sees its connection closed, as with a refused one
	}
	l.mu.Lock()
	l.server = s
	l.mu.Unlock()
	select {
	case <-l.done: // reset while dialing
		s.Close()
		return
	default:
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(l, s, l.client) }()
	go func() { defer wg.Done(); p.pipe(l, l.client, s) }()
	wg.Wait()
}

// pipe copies from src to dst, passing each chunk and the end of the stream
// through the gate. The first direction to end closes the whole link.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate(l) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				l.close()
				return
			}
		}
		if err != nil {
			// An end of stream or a reset is passed on (by closing both
			// sides) only when not stalled: a black hole passes nothing.
			if !p.gate(l) {
				return
			}
			l.close()
			return
		}
	}
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		l.client.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.server != nil {
			l.server.Close()
		}
	})
}

func (l *link) reset() {
	l.mu.Lock()
	conns := []net.Conn{l.client, l.server}
	l.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	}
	l.close()
}

// String describes the proxy for logs.
func (p *Proxy) String() string {
	return "proxy 127.0.0.1:" + strconv.Itoa(p.Port()) + " -> " + p.target
}
