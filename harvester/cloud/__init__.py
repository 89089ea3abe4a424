"""Everything that talks to the cloud, and nothing that decides what to harvest.

    transport   HTTP: send a request / open a stream, aiohttp failures mapped to ours in one
                place, redacted URLs, a circuit breaker per peer (:mod:`.breaker`)
    wire        tolerant readers of what arrives: field values, error bodies, Retry-After
    auth        the Authenticator seam: AK/SK signer, static token
    iam         the IAM token flow: login, project-id lookup, token cache and renewal
    api         authenticated JSON calls: one resend after a 401, statuses become errors
    dcs         one typed method per DCS call; wire JSON -> :mod:`harvester.models` records, once
    obs         signed-link downloads: redirects vetted, OBS refusals typed, bodies decoded
                (:mod:`.decoding`) and checked complete
    retry       the retry budgets and the per-project rate limiter (stamina underneath)

Imports run one way: dcs, iam -> api -> auth, transport -> breaker, wire; obs -> transport,
decoding. Nothing here imports the engine, the archive or the commands.
"""
