// Notification channel kinds and the form fields each takes (mirrors hubmon-notify's settings).

export type ChannelKind = "email" | "slack" | "dingtalk" | "feishu" | "wecom" | "telegram" | "webhook" | "in_app";
export const CHANNEL_KINDS: ChannelKind[] = ["email", "slack", "dingtalk", "feishu", "wecom", "telegram", "webhook", "in_app"];

export type FieldType = "text" | "secret" | "number" | "list" | "bool" | "select";

export interface ChannelField {
  name: string;
  type: FieldType;
  required?: boolean;
  options?: string[];
  placeholder?: string;
}

export const CHANNEL_FIELDS: Record<ChannelKind, ChannelField[]> = {
  email: [
    { name: "smtp_host", type: "text", required: true, placeholder: "smtp.example.com" },
    { name: "smtp_port", type: "number", placeholder: "587" },
    { name: "security", type: "select", options: ["starttls", "tls", "none"] },
    { name: "username", type: "text" },
    { name: "password", type: "secret" },
    { name: "from", type: "text", required: true, placeholder: "hubmon@example.com" },
    { name: "to", type: "list", required: true, placeholder: "ops@example.com, oncall@example.com" },
  ],
  slack: [
    { name: "webhook_url", type: "secret", required: true, placeholder: "https://hooks.slack.com/services/…" },
    { name: "channel", type: "text", placeholder: "#alerts" },
    { name: "username", type: "text" },
  ],
  dingtalk: [
    { name: "webhook_url", type: "secret", required: true },
    { name: "secret", type: "secret", placeholder: "SEC…" },
    { name: "at_mobiles", type: "list" },
    { name: "at_all", type: "bool" },
  ],
  feishu: [
    { name: "webhook_url", type: "secret", required: true },
    { name: "secret", type: "secret" },
  ],
  wecom: [{ name: "webhook_url", type: "secret", required: true }],
  telegram: [
    { name: "bot_token", type: "secret", required: true },
    { name: "chat_id", type: "text", required: true, placeholder: "-100… or @channel" },
    { name: "api_url", type: "text" },
  ],
  webhook: [
    { name: "webhook_url", type: "secret", required: true, placeholder: "https://example.com/hook" },
    { name: "secret", type: "secret" },
    { name: "max_alerts", type: "number", placeholder: "0" },
  ],
  in_app: [{ name: "users", type: "list", placeholder: "empty: every user" }],
};

export type FormValues = Record<string, string | boolean>;

/** The form's values from a stored config (secrets come masked: the form leaves them blank). */
export function formFromConfig(kind: ChannelKind, config: Record<string, unknown>): FormValues {
  const values: FormValues = {};
  for (const field of CHANNEL_FIELDS[kind]) {
    const value = config[field.name];
    if (field.type === "secret") values[field.name] = "";
    else if (field.type === "bool") values[field.name] = value === true;
    else if (field.type === "list") values[field.name] = Array.isArray(value) ? value.join(", ") : "";
    else values[field.name] = value === undefined || value === null ? "" : String(value);
  }
  return values;
}

/**
 * The `config` to send. Empty optional fields are left out; an empty secret on an edit is left
 * out too, which the API reads as "keep the stored value" (secrets are write-only).
 */
export function configFromForm(kind: ChannelKind, values: FormValues): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const field of CHANNEL_FIELDS[kind]) {
    const value = values[field.name];
    if (field.type === "bool") {
      if (value === true) config[field.name] = true;
      continue;
    }
    const text = typeof value === "string" ? value.trim() : "";
    if (!text) continue;
    if (field.type === "number") config[field.name] = Number(text);
    else if (field.type === "list") config[field.name] = text.split(",").map((s) => s.trim()).filter(Boolean);
    else config[field.name] = text;
  }
  return config;
}
