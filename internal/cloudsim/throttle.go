package cloudsim

import (
	"fmt"
	"time"
)

// Throttle is CloudStack's API request throttling, the rate-limit plugin's
// ApiRateLimitServiceImpl driven by the global settings api.throttling.enabled,
// api.throttling.interval and api.throttling.max. Off (the zero value) by default,
// as in CloudStack.
//
// What it reproduces, from the plugin's source (4.20):
//   - Each account has a fixed window of Interval that opens with its first call
//     once the previous window has ended (an Ehcache entry with that time to live),
//     not a sliding one; every call of the account counts, list* and
//     queryAsyncJobResult included, and so do the calls it refuses.
//   - The call that makes the count exceed Max, and every later one until the window
//     ends, is refused before it runs: HTTP 429, errorcode 429 (API_LIMIT_EXCEED),
//     cserrorcode 9999 (a plain ServerApiException), errortext
//     "The given user has reached his/her account api limit, please retry after [<n>] ms."
//     where n is what is left of the window.
//   - The check comes after the API key, the account and "expires" are checked and
//     before the signature is: a request with a known key and a bad signature counts
//     (a request that fails the earlier checks does not), and is answered 429 rather
//     than 401 when over the limit.
//   - Root admin accounts (Admin in the world file) are never throttled.
type Throttle struct {
	// Max is api.throttling.max (CloudStack's default 25): the calls an account may
	// make per Interval. 0 turns throttling off.
	Max int `json:"max"`
	// Interval is api.throttling.interval (CloudStack: whole seconds, default 1);
	// 0 means 1s. The simulator also takes fractions of a second, for tests.
	Interval time.Duration `json:"interval"`
}

// DefaultThrottleInterval is api.throttling.interval's default.
const DefaultThrottleInterval = time.Second

func (t Throttle) validate() error {
	if t.Max < 0 {
		return fmt.Errorf("cloudsim: throttle max must be >= 0, got %d", t.Max)
	}
	if t.Interval < 0 {
		return fmt.Errorf("cloudsim: throttle interval must not be negative, got %v", t.Interval)
	}
	return nil
}

func (t Throttle) interval() time.Duration {
	if t.Interval == 0 {
		return DefaultThrottleInterval
	}
	return t.Interval
}

// String describes the setting for a log line.
func (t Throttle) String() string {
	if t.Max == 0 {
		return "off"
	}
	return fmt.Sprintf("%d calls per account per %v (root admin accounts exempt)", t.Max, t.interval())
}

// textThrottled is RequestLimitException's message as ApiRateLimitServiceImpl builds it
// since the plugin's messages were reworded (the 4.20 source has the brackets; older
// releases said "please retry after <n> ms." without them).
const textThrottled = "The given user has reached his/her account api limit, please retry after [%d] ms."

// throttleWindow is one account's current window: StoreEntryImpl's expiry and counter.
type throttleWindow struct {
	expiry time.Time
	count  int
}

// throttleLocked counts a call of the account and refuses it when the account is over
// its limit. s.mu is held.
func (s *Simulator) throttleLocked(a *Account, now time.Time) *apiError {
	t := s.opts.Throttle
	if t.Max == 0 || a.Admin {
		return nil
	}
	w := s.windows[a.Name]
	// StoreEntryImpl.isExpired: "now > expiry"; the cache then drops the entry and the
	// next call opens a new window.
	if w == nil || now.After(w.expiry) {
		w = &throttleWindow{expiry: now.Add(t.interval())}
		s.windows[a.Name] = w
	}
	w.count++
	if w.count <= t.Max {
		return nil
	}
	return errThrottled(w.expiry.Sub(now))
}

// errThrottled is the refusal ApiServer makes of a RequestLimitException: a
// ServerApiException(API_LIMIT_EXCEED, message), whose cserrorcode is always 9999.
func errThrottled(left time.Duration) *apiError {
	return &apiError{Code: codeAPILimit, CSCode: csGeneric, Text: fmt.Sprintf(textThrottled, left.Milliseconds())}
}
