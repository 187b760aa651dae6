// Marks the page as scripted before it renders (a file, not inline, so the CSP needs no 'unsafe-inline').
document.documentElement.className = "js";
