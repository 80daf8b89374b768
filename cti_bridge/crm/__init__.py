"""The site's CRM over HTTP: caller lookup with a timeout, a cache and a circuit breaker."""
