package cloudstack

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/migratekit/ossea-operator/api/v1alpha1"
)

// Keys of the credentials Secret.
const (
	SecretKeyAPIKey    = "apiKey"
	SecretKeySecretKey = "secretKey"
)

// Defaults of a Factory. CloudStack throttles an account at 25 requests per second by
// default (api.throttling.max, when api.throttling.enabled), so the default rate stays well
// below it; a full burst on top of it can still pass 25 within one second, and the 429
// that follows pauses the endpoint's budget (see WithRateLimit).
const (
	DefaultQPS                   = 10
	DefaultBurst                 = 20
	DefaultRequestTimeout        = 30 * time.Second
	DefaultMaxDataVolumesPerVM   = 6
	defaultDialTimeout           = 10 * time.Second
	defaultTLSHandshakeTimeout   = 10 * time.Second
	defaultIdleConnTimeout       = 90 * time.Second
	defaultMaxIdleConnsPerConfig = 10
)

// Option configures a Factory.
type Option func(*options)

type options struct {
	qps                   float64
	burst                 int
	timeout               time.Duration
	log                   logr.Logger
	defaultMaxDataVolumes int
}

// WithRateLimit sets the client-side rate limit, per CloudStack endpoint: every OsseaConfig
// whose apiURL names the same endpoint draws on one budget, since CloudStack throttles by
// account and its management server is shared, however many OMA VMs a cluster has.
// qps <= 0 turns the limit off. When CloudStack's own API throttling refuses a call (429),
// the budget is emptied and sends nothing more until the account's window, as the reply
// names it, has ended (at most a minute): every call sent sooner would be refused too.
func WithRateLimit(qps float64, burst int) Option {
	return func(o *options) {
		o.qps = qps
		o.burst = max(burst, 1)
	}
}

// WithRequestTimeout bounds each HTTP request (not the wait for the rate limiter, which
// the caller's context bounds).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithLogger sets the logger for calls whose context carries none.
func WithLogger(l logr.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithDefaultMaxDataVolumes sets the per-VM data disk limit Validate reports when the
// OsseaConfig has no override. CloudStack reports it only to root admins (through
// listHypervisorCapabilities), so the operator cannot ask.
func WithDefaultMaxDataVolumes(n int) Option {
	return func(o *options) { o.defaultMaxDataVolumes = n }
}

// Factory builds and caches one Cloud per OsseaConfig. It is safe for concurrent use.
type Factory struct {
	opts options

	mu       sync.Mutex
	entries  map[types.NamespacedName]*entry
	limiters map[string]*budget // by endpointKey
	// readers batch the reads of every config that sees the same account through the same
	// endpoint: what one listVolumes by ids or names, or one listAsyncJobs, returns depends
	// on nothing else, so the OMA VMs of one cloud share their polls.
	readers map[account]*readers
}

// readers are an account's batched lookups and its book of jobs.
type readers struct {
	volumes *batcher[Volume]
	names   *batcher[[]Volume]
	jobs    *jobBook
}

// account is what decides what a client sees.
type account struct {
	endpoint, apiKey, secretKey, caBundle string
	insecure                              bool
}

func accountOf(s settings) account {
	return account{endpoint: endpointKey(s.apiURL), apiKey: s.apiKey, secretKey: s.secretKey, caBundle: s.caBundle, insecure: s.insecure}
}

// settings is everything a client is built from; a change in any of it means a rebuild.
// It holds the keys, in memory only, so that a Secret edited without a new
// resourceVersion (a fake client, a test) still takes effect.
type settings struct {
	apiURL     string
	caBundle   string
	insecure   bool
	secretUID  types.UID
	secretRV   string
	apiKey     string
	secretKey  string
	omaVMID    string
	secretName string
}

type entry struct {
	settings settings
	cloud    *adapter
	http     *http.Transport
	// The limiter is the endpoint's, shared with other configs. It and the job memo outlive
	// rebuilds: rotating a key must not reset the request budget or forget what running
	// attach jobs were for.
	limiter *budget
	jobs    *jobTargets
}

// NewFactory returns a Factory with the defaults above, changed by opts.
func NewFactory(opts ...Option) *Factory {
	o := options{
		qps:                   DefaultQPS,
		burst:                 DefaultBurst,
		timeout:               DefaultRequestTimeout,
		log:                   logr.Discard(),
		defaultMaxDataVolumes: DefaultMaxDataVolumesPerVM,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return &Factory{opts: o, entries: map[types.NamespacedName]*entry{}, limiters: map[string]*budget{}, readers: map[account]*readers{}}
}

// For returns the Cloud for an OsseaConfig and its credentials Secret, reusing the cached
// one unless the Secret (its resourceVersion or keys) or the endpoint or TLS settings
// changed. Errors match ErrSecretMissing, ErrSecretInvalid, ErrInvalidConfig or ErrTLS.
func (f *Factory) For(cfg *v1alpha1.OsseaConfig, secret *corev1.Secret) (Cloud, error) {
	if cfg == nil {
		return nil, newError(ErrInvalidConfig, "no OsseaConfig given")
	}
	key := types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.Name}
	s, err := settingsFor(cfg, secret)
	if err != nil {
		return nil, err
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.entries[key]
	if old != nil && old.settings == s {
		return old.cloud, nil
	}
	tlsConfig, err := tlsConfigFor(&cfg.Spec)
	if err != nil {
		return nil, err
	}
	e := &entry{settings: s, limiter: f.limiterFor(s.apiURL)}
	if old != nil {
		e.jobs = old.jobs
		old.http.CloseIdleConnections()
	} else {
		e.jobs = newJobTargets()
	}
	e.http = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: defaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   defaultTLSHandshakeTimeout,
		IdleConnTimeout:       defaultIdleConnTimeout,
		MaxIdleConnsPerHost:   defaultMaxIdleConnsPerConfig,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	red := newRedactor(s.apiKey, s.secretKey)
	e.cloud = &adapter{
		apiURL:    s.apiURL,
		apiKey:    s.apiKey,
		secretKey: s.secretKey,
		verifyTLS: !s.insecure,
		rt: &transport{
			next:    e.http,
			limiter: e.limiter,
			timeout: f.opts.timeout,
			red:     red,
			log:     f.opts.log.WithValues("osseaConfig", key.String()),
		},
		red:                   red,
		omaVMID:               s.omaVMID,
		defaultMaxDataVolumes: f.opts.defaultMaxDataVolumes,
		jobs:                  e.jobs,
	}
	// The first config of an account lends its client to the account's reads; any other
	// would send the same request. (Its name is the one in their debug logs.)
	shared := f.readers[accountOf(s)]
	if shared == nil {
		shared = e.cloud.newReaders()
		f.readers[accountOf(s)] = shared
	}
	e.cloud.volumes, e.cloud.names, e.cloud.book = shared.volumes, shared.names, shared.jobs
	f.entries[key] = e
	if old != nil {
		f.dropUnused() // the config may have moved to another endpoint or account
	}
	return e.cloud, nil
}

// Cached returns the client For built for this config and for the Secret version named by
// its UID and resourceVersion, when nothing it was built from has changed since. It lets a
// caller that holds only the Secret's metadata (from a cache) skip reading the Secret's data
// on every call; on false it reads the Secret and calls For.
func (f *Factory) Cached(cfg *v1alpha1.OsseaConfig, secretUID types.UID, secretRV string) (Cloud, bool) {
	if cfg == nil {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.entries[types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.Name}]
	if e == nil {
		return nil, false
	}
	s := e.settings
	if s.apiURL != strings.TrimSpace(cfg.Spec.APIURL) || s.caBundle != cfg.Spec.CABundle || s.insecure != cfg.Spec.InsecureSkipTLSVerify ||
		s.omaVMID != cfg.Spec.OMAVirtualMachineID || s.secretUID != secretUID || s.secretRV != secretRV || secretRV == "" {
		return nil, false
	}
	return e.cloud, true
}

// Forget drops the cached client of a deleted OsseaConfig.
func (f *Factory) Forget(key types.NamespacedName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.entries[key]; e != nil {
		e.http.CloseIdleConnections()
		delete(f.entries, key)
		f.dropUnused()
	}
}

// limiterFor returns the endpoint's shared limiter, creating it on first use. f.mu is held.
func (f *Factory) limiterFor(apiURL string) *budget {
	k := endpointKey(apiURL)
	l := f.limiters[k]
	if l == nil {
		l = newBudget(f.opts.qps, f.opts.burst)
		f.limiters[k] = l
	}
	return l
}

// dropUnused forgets the limiters and readers no cached client uses any more. f.mu is held.
func (f *Factory) dropUnused() {
	endpoints, accounts := map[string]bool{}, map[account]bool{}
	for _, e := range f.entries {
		endpoints[endpointKey(e.settings.apiURL)] = true
		accounts[accountOf(e.settings)] = true
	}
	for k := range f.limiters {
		if !endpoints[k] {
			delete(f.limiters, k)
		}
	}
	for k := range f.readers {
		if !accounts[k] {
			delete(f.readers, k)
		}
	}
}

// endpointKey names the CloudStack endpoint of an apiURL that settingsFor accepted, so
// that spellings of one URL (host case, a trailing slash) share a budget.
func endpointKey(apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil {
		return apiURL
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.Path, "/")
}

func settingsFor(cfg *v1alpha1.OsseaConfig, secret *corev1.Secret) (settings, error) {
	if secret == nil {
		return settings{}, newError(ErrSecretMissing, "credentials Secret %q of OsseaConfig %s/%s not given",
			cfg.Spec.CredentialsSecretRef.Name, cfg.Namespace, cfg.Name)
	}
	s := settings{
		apiURL:     strings.TrimSpace(cfg.Spec.APIURL),
		caBundle:   cfg.Spec.CABundle,
		insecure:   cfg.Spec.InsecureSkipTLSVerify,
		secretUID:  secret.UID,
		secretRV:   secret.ResourceVersion,
		omaVMID:    cfg.Spec.OMAVirtualMachineID,
		secretName: secret.Namespace + "/" + secret.Name,
	}
	var err error
	if s.apiKey, err = secretValue(secret, SecretKeyAPIKey); err != nil {
		return settings{}, err
	}
	if s.secretKey, err = secretValue(secret, SecretKeySecretKey); err != nil {
		return settings{}, err
	}
	u, err := url.Parse(s.apiURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may be malformed in ways that make url.Parse quote it; neither form holds
		// a secret, but the query is dropped anyway in case someone pasted a signed URL.
		return settings{}, newError(ErrInvalidConfig, "apiURL %q is not an http:// or https:// URL with a host", redactURL(s.apiURL))
	}
	if u.RawQuery != "" {
		return settings{}, newError(ErrInvalidConfig, "apiURL must not carry a query (cloudstack-go appends its own)")
	}
	return s, nil
}

// secretValue trims surrounding whitespace because keys are often stored with the newline
// of `echo key | base64`, which CloudStack would reject as a bad signature.
func secretValue(secret *corev1.Secret, key string) (string, error) {
	v := strings.TrimSpace(string(secret.Data[key]))
	if v == "" {
		if sv, ok := secret.StringData[key]; ok {
			v = strings.TrimSpace(sv)
		}
	}
	if v == "" {
		return "", newError(ErrSecretInvalid, "Secret %s/%s has no non-empty key %q", secret.Namespace, secret.Name, key)
	}
	return v, nil
}

func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	return (*redactor)(nil).String(s)
}
