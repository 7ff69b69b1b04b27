const form = document.getElementById("form"), out = document.getElementById("out");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = form.file.files[0], preview = document.getElementById("preview");
  preview.src = URL.createObjectURL(file); preview.hidden = false;
  out.textContent = "…";
  const response = await fetch("predict", {method: "POST", body: new FormData(form)});
  const answer = await response.json();
  if (!response.ok) { out.textContent = "Error: " + answer.error; return; }
  const table = document.createElement("table");
  for (const {label, probability} of answer.predictions) {
    const row = table.insertRow(), pct = (100 * probability).toFixed(1) + "%";
    row.insertCell().textContent = label;
    row.insertCell().textContent = pct;
    const bar = document.createElement("div"); bar.className = "bar"; bar.style.width = pct;
    const cell = row.insertCell(); cell.style.width = "12em"; cell.append(bar);
  }
  out.replaceChildren(table);
});
