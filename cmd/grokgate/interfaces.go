package main

import (
	"github.com/grokgate/grokgate/admin"
	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/metrics"
	"github.com/grokgate/grokgate/postgres"
	"github.com/grokgate/grokgate/ratelimit"
	"github.com/grokgate/grokgate/redis"
	"github.com/grokgate/grokgate/sqlite"
	ledger "github.com/grokgate/grokgate/usage"
	"github.com/grokgate/grokgate/xai"
)

// The concrete types serve wires together satisfy the interfaces their users
// declare; here, the one package that knows both, a drifted method fails the
// build rather than a run.
var (
	_ gateway.Authenticator  = (*keys.Cache)(nil)
	_ gateway.Upstream       = (*xai.Client)(nil)
	_ gateway.UsageRecorder  = (*ledger.Recorder)(nil)
	_ gateway.Limiter        = (*ratelimit.Limiter)(nil)
	_ gateway.Limiter        = (*redis.Limiter)(nil)
	_ gateway.Observer       = (*metrics.Metrics)(nil)
	_ gateway.ResponseOwners = (*sqlite.DB)(nil)
	_ gateway.ResponseOwners = (*postgres.DB)(nil)
	_ xai.Observer           = (*metrics.Metrics)(nil)
	_ redis.Observer         = (*metrics.Limiter)(nil)
	_ redis.Ledger           = (*sqlite.DB)(nil)
	_ redis.Ledger           = (*postgres.DB)(nil)
	_ ledger.Sink            = (*sqlite.DB)(nil)
	_ ledger.Sink            = (*postgres.DB)(nil)
	_ admin.Store            = (*sqlite.DB)(nil)
	_ admin.Store            = (*postgres.DB)(nil)
	_ admin.Gateway          = (*gateway.Server)(nil)
)
