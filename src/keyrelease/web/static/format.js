// How the console writes times, countdowns, counts and an email's delivery, in the reader's
// locale.

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function formatDateTime(iso) {
  return iso ? dateTime.format(new Date(iso)) : "";
}

export function formatTime(iso) {
  return timeOfDay.format(new Date(iso));
}

export function formatCountdown(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

// A duration as the API writes it ("14d", "36h", "90m") in words: "14 days".
export function formatDuration(duration) {
  const unit = { d: "day", h: "hour", m: "minute" }[duration.slice(-1)];
  return unit ? plural(Number(duration.slice(0, -1)), unit) : duration;
}

// A number of seconds (a setting such as the rotation's grace) in its largest whole unit:
// 86400 is "1 day", 5400 "90 minutes": exact, never rounded.
export function formatSeconds(seconds) {
  for (const [unit, size] of [["day", 86_400], ["hour", 3_600], ["minute", 60]]) {
    if (seconds >= size && seconds % size === 0) return plural(seconds / size, unit);
  }
  return plural(seconds, "second");
}

export function deliveryText(delivery) {
  if (!delivery) return "";
  switch (delivery.status) {
    case "SENT":
      return `Latest email sent at ${formatTime(delivery.sentAt ?? delivery.at)}.`;
    case "FAILED":
      return `The latest email could not be sent (${delivery.lastError ?? "no reason given"}). Ask an operator to check the mail settings.`;
    case "EXPIRED":
      return "The latest email was not sent before its code expired.";
    default:
      return "The latest email is on its way.";
  }
}
