// charter assembly: the only script. A vote form is sent once, even on a double click.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.sent) { event.preventDefault(); return; }
  form.dataset.sent = "1";
  const clicked = event.submitter;
  if (clicked && clicked.name) {
    // disabled buttons are not submitted: carry the clicked button's value in a hidden field
    const carry = document.createElement("input");
    carry.type = "hidden"; carry.name = clicked.name; carry.value = clicked.value;
    form.appendChild(carry);
  }
  form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
});
