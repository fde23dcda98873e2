import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { getLang } from "./lib/i18n";
import { initTheme } from "./lib/theme";
import "./styles.css";

initTheme();
document.documentElement.lang = getLang() === "zh" ? "zh-CN" : "en";
const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
