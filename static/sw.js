/* Relate Mail service worker: shows new-mail push notifications and opens the message.
 *
 * The server (webapp/push.py) sends encrypted JSON: {type, title, body, tag, emailId, url}.
 * Served at /sw.js so its scope is the whole site. */
'use strict';

const DEFAULT_TITLE = 'New mail';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

function readPayload(event) {
  if (!event.data) return {};
  try {
    return event.data.json();
  } catch (err) {
    return { body: event.data.text() };
  }
}

self.addEventListener('push', (event) => {
  const data = readPayload(event);
  const title = data.title || DEFAULT_TITLE;
  const options = {
    body: data.body || '',
    tag: data.tag || undefined, // one notification per email, replaced rather than stacked
    data: { url: data.url || '/', emailId: data.emailId || null },
  };
  event.waitUntil(self.registration.showNotification(title, options));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const { url, emailId } = event.notification.data || {};
  const target = new URL(url || '/', self.location.origin).href;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const client of windows) {
      if (new URL(client.url).origin !== self.location.origin) continue;
      await client.focus();
      // An open web UI can show the message without a reload; otherwise navigate there.
      client.postMessage({ type: 'open-email', emailId, url: target });
      if (client.url !== target && 'navigate' in client) {
        try { await client.navigate(target); } catch (err) { /* not controlled by us yet */ }
      }
      return;
    }
    await self.clients.openWindow(target);
  })());
});

// The browser replaced the subscription (expiry, key rotation): register the new one.
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil((async () => {
    const keyResponse = await fetch('/api/push-subscriptions/vapid-public-key', { credentials: 'include' });
    if (!keyResponse.ok) return;
    const { enabled, publicKey } = await keyResponse.json();
    if (!enabled || !publicKey) return;
    const padded = publicKey.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (publicKey.length % 4)) % 4);
    const applicationServerKey = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const subscription = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
    // A cookie-authenticated write carries the session's CSRF token (GET /api/session).
    const headers = { 'Content-Type': 'application/json' };
    const sessionResponse = await fetch('/api/session', { credentials: 'include' });
    if (sessionResponse.ok) {
      const { csrfToken } = await sessionResponse.json();
      if (csrfToken) headers['X-CSRF-Token'] = csrfToken;
    }
    if (event.oldSubscription) {
      await fetch('/api/push-subscriptions', {
        method: 'DELETE', credentials: 'include', headers,
        body: JSON.stringify({ endpoint: event.oldSubscription.endpoint }),
      });
    }
    await fetch('/api/push-subscriptions', {
      method: 'POST', credentials: 'include', headers, body: JSON.stringify(subscription.toJSON()),
    });
  })());
});
